/**
 * The tenant console's live data, shared by every view: the two feeds (decided usage, alerts and
 * remediations), opened once after sign-in and kept across navigation.
 *
 * Built for a busy tenant (5,000 events/s and more): a feed message only touches memory — the
 * decision goes into a bounded ring (the newest RING_CAPACITY), counters move, an alert or
 * command replaces its previous version in a pending map — and views hear about it at most
 * TICK_MS apart, with the changes merged. Nothing grows with the rate or the session's length.
 *
 * On a reconnection the hub backfills the newest decisions over REST (merged by id, so nothing
 * shows twice) and tells the views, which reload their lists.
 */
import type { Api } from './api';
import { LiveFeed, type FeedMessage, type FeedStatus } from './feed';
import { RateMeter, Ring } from './ring';
import type { Session } from './session';
import type { Alert, CommandRecord, UsageRecord } from './types';

export const RING_CAPACITY = 2_000;
export const TICK_MS = 250;
const BACKFILL = 200;

export interface LiveChanges {
  /** Decisions arrived since the last tick. */
  decisions: number;
  /** Latest version of each alert that changed since the last tick. */
  alerts: Alert[];
  /** Latest version of each command that changed since the last tick. */
  remediations: CommandRecord[];
  /** A feed reconnected: lists should be reloaded. */
  resumed: boolean;
}

export interface LiveCounts {
  received: number;
  denied: number;
  perSecond: number;
  deniedPerSecond: number;
}

type Listener = (changes: LiveChanges) => void;

export class LiveHub {
  readonly decisions = new Ring<UsageRecord>(RING_CAPACITY);
  readonly #rate = new RateMeter();
  readonly #deniedRate = new RateMeter();
  readonly #listeners = new Set<Listener>();
  readonly #statusListeners = new Set<() => void>();
  readonly #pendingAlerts = new Map<string, Alert>();
  readonly #pendingCommands = new Map<string, CommandRecord>();
  #pendingDecisions = 0;
  #resumed = false;
  #received = 0;
  #denied = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  readonly stream: LiveFeed;
  readonly alerts: LiveFeed;

  constructor(
    readonly api: Api,
    session: Session,
  ) {
    const onStatus = () => this.#statusListeners.forEach((l) => l());
    this.stream = new LiveFeed({
      path: '/api/v1/stream',
      session,
      onMessage: (m) => this.#onStream(m),
      onStatus,
      onResume: () => void this.#resume(),
    });
    this.alerts = new LiveFeed({
      path: '/ws/alerts',
      session,
      onMessage: (m) => this.#onAlerts(m),
      onStatus,
      onResume: () => this.#markResumed(),
    });
  }

  start(): void {
    this.stream.start();
    this.alerts.start();
  }

  stop(): void {
    this.stream.stop();
    this.alerts.stop();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  counts(): LiveCounts {
    return { received: this.#received, denied: this.#denied, perSecond: this.#rate.rate(), deniedPerSecond: this.#deniedRate.rate() };
  }

  statuses(): { stream: FeedStatus; alerts: FeedStatus } {
    return { stream: this.stream.status, alerts: this.alerts.status };
  }

  /** Called at most every TICK_MS with what changed. */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onStatus(listener: () => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  #onStream(m: FeedMessage): void {
    if (m.type !== 'usage.decided') return;
    const { records } = m.data as { records: UsageRecord[] };
    let denied = 0;
    for (const r of records) {
      this.decisions.push(r);
      if (r.effect === 'deny') denied++;
    }
    this.#received += records.length;
    this.#denied += denied;
    this.#rate.add(records.length);
    this.#deniedRate.add(denied);
    this.#pendingDecisions += records.length;
    this.#schedule();
  }

  #onAlerts(m: FeedMessage): void {
    if (m.type === 'alert.opened' || m.type === 'alert.updated') {
      const alert = m.data as Alert;
      this.#pendingAlerts.set(alert.id, alert);
    } else if (m.type === 'remediation') {
      const command = m.data as CommandRecord;
      this.#pendingCommands.set(command.id, command);
    } else {
      return;
    }
    this.#schedule();
  }

  async #resume(): Promise<void> {
    try {
      const { usage } = await this.api.get<{ usage: UsageRecord[] }>('/api/v1/app-usage', { limit: BACKFILL });
      // Oldest first, so the ring's insertion order stays close to time order.
      for (const r of usage.reverse()) this.decisions.push(r);
    } catch {
      // The socket is live again; a failed backfill only leaves a gap in the recent rows.
    }
    this.#markResumed();
  }

  #markResumed(): void {
    this.#resumed = true;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => this.#flush(), TICK_MS);
  }

  #flush(): void {
    this.#timer = null;
    const changes: LiveChanges = {
      decisions: this.#pendingDecisions,
      alerts: [...this.#pendingAlerts.values()],
      remediations: [...this.#pendingCommands.values()],
      resumed: this.#resumed,
    };
    this.#pendingDecisions = 0;
    this.#pendingAlerts.clear();
    this.#pendingCommands.clear();
    this.#resumed = false;
    for (const l of this.#listeners) l(changes);
  }
}

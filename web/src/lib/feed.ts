/**
 * One live feed (WebSocket) that stays connected: the access token travels in the subprotocol
 * (`Sec-WebSocket-Protocol: bearer, <token>`), never in the URL; a dropped connection is retried
 * with exponential backoff and full jitter (0.5 s doubling to 30 s), reset once a connection has
 * delivered its `ready` message; an expired or revoked token (4401) is refreshed before retrying,
 * at once the first time and with the backoff when 4401 comes again before a `ready`; every
 * reconnection after the first calls `onResume` so the views can fetch what they missed over REST. Close codes: 1013 slow consumer and 1001 shutdown retry; 4403 (not a tenant
 * caller) stops for good.
 */
import type { Session } from './session';

export type FeedStatus =
  | { state: 'connecting'; attempt: number }
  | { state: 'live'; since: number }
  | { state: 'waiting'; retryAt: number; reason: string }
  | { state: 'stopped'; reason: string };

export interface FeedMessage {
  type: string;
  data: unknown;
}

export interface LiveFeedOptions {
  /** Path on this origin, e.g. `/api/v1/stream`. */
  path: string;
  session: Session;
  onMessage: (message: FeedMessage) => void;
  onStatus?: (status: FeedStatus) => void;
  /** After a reconnection (not the first connection): fetch what passed meanwhile. */
  onResume?: () => void;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Injectable for tests. */
  random?: () => number;
  createSocket?: (url: string, protocols: string[]) => WebSocket;
}

/** WebSocket.OPEN; spelled out so the module loads where no WebSocket global exists (tests). */
const OPEN = 1;
const CLOSE_FORBIDDEN = 4403;
const CLOSE_CREDENTIAL = 4401;

export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.max(0, attempt - 1));
  return Math.max(minMs / 2, Math.round(random() * ceiling));
}

export class LiveFeed {
  readonly #o: Required<Omit<LiveFeedOptions, 'onStatus' | 'onResume'>> & Pick<LiveFeedOptions, 'onStatus' | 'onResume'>;
  #socket: WebSocket | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #attempt = 0;
  #connectedOnce = false;
  /** 4401 closes since the last `ready`: a server that refuses every fresh token is retried with backoff. */
  #credentialCloses = 0;
  #stopped = true;
  /**
   * Bumped by every connection attempt, stop and "reconnect now": a step that resumes after an
   * await (the token, a refresh after 4401) goes on only if no newer one began meanwhile, so two
   * sockets never run side by side (the older one would stay open, unread, holding one of the
   * tenant's feed connections).
   */
  #epoch = 0;
  #status: FeedStatus = { state: 'stopped', reason: 'not started' };

  constructor(opts: LiveFeedOptions) {
    this.#o = {
      minDelayMs: 500,
      maxDelayMs: 30_000,
      random: Math.random,
      createSocket: (url, protocols) => new WebSocket(url, protocols),
      ...opts,
    };
  }

  get status(): FeedStatus {
    return this.#status;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    void this.#connect();
  }

  stop(reason = 'stopped'): void {
    this.#stopped = true;
    this.#epoch++;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const s = this.#socket;
    this.#socket = null;
    if (s && s.readyState <= OPEN) s.close(1000, reason);
    this.#setStatus({ state: 'stopped', reason });
  }

  /** Drops the connection and reconnects at once (a user's "reconnect now"). */
  reconnectNow(): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#attempt = 0;
    const s = this.#socket;
    this.#socket = null;
    if (s && s.readyState <= OPEN) s.close(1000, 'reconnecting');
    void this.#connect();
  }

  #setStatus(status: FeedStatus): void {
    this.#status = status;
    this.#o.onStatus?.(status);
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const epoch = ++this.#epoch;
    this.#attempt++;
    this.#setStatus({ state: 'connecting', attempt: this.#attempt });
    let token: string;
    try {
      token = await this.#o.session.accessToken();
    } catch {
      if (epoch !== this.#epoch) return;
      if (this.#o.session.ended) return this.stop('signed out');
      return this.#retry('token refresh failed');
    }
    if (epoch !== this.#epoch) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = this.#o.createSocket(`${scheme}://${location.host}${this.#o.path}`, ['bearer', token]);
    this.#socket = socket;
    socket.onmessage = (ev: MessageEvent) => {
      if (this.#socket !== socket || typeof ev.data !== 'string') return;
      let message: FeedMessage;
      try {
        message = JSON.parse(ev.data) as FeedMessage;
      } catch {
        return;
      }
      if (message.type === 'ready') {
        this.#attempt = 0;
        this.#credentialCloses = 0;
        this.#setStatus({ state: 'live', since: Date.now() });
        if (this.#connectedOnce) this.#o.onResume?.();
        this.#connectedOnce = true;
        return;
      }
      this.#o.onMessage(message);
    };
    socket.onclose = (ev: CloseEvent) => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      if (ev.code === CLOSE_FORBIDDEN) return this.stop('this account has no live feed');
      if (ev.code === CLOSE_CREDENTIAL) {
        // The token expired or was revoked: a refresh tells which (a revoked session ends here).
        // Its outcome is dropped when the user reconnected or stopped the feed meanwhile. Only the
        // first 4401 in a row retries at once: a server that refuses the renewed token too would
        // otherwise be hammered with refreshes and connections in a tight loop.
        const immediate = ++this.#credentialCloses === 1;
        void this.#o.session.refresh().then(
          () => {
            if (epoch === this.#epoch) this.#retry('token renewed', immediate ? 0 : undefined);
          },
          () => {
            if (epoch !== this.#epoch) return;
            if (this.#o.session.ended) this.stop('signed out');
            else this.#retry('token refresh failed');
          },
        );
        return;
      }
      this.#retry(ev.reason || `connection closed (${ev.code})`);
    };
  }

  #retry(reason: string, delayMs?: number): void {
    if (this.#stopped) return;
    // #attempt counts the connections tried since the last one that became ready.
    const delay = delayMs ?? backoffDelay(this.#attempt + 1, this.#o.minDelayMs, this.#o.maxDelayMs, this.#o.random);
    this.#setStatus({ state: 'waiting', retryAt: Date.now() + delay, reason });
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#connect();
    }, delay);
  }
}

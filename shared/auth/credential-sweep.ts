/**
 * The periodic re-check of live work (MQTT sessions, WebSocket feeds) against the store: a
 * revocation whose bus announcement was lost (pub/sub between processes is at most once) still
 * ends that work within a round. One copy of the loop for the broker (broker/access.ts) and the
 * API's feeds (api/feeds.ts); what a credential is and what ending means stay with them.
 *
 * - One read per distinct credential (`key`), not per session: work opened under the same
 *   credential shares it, and the first check seen for a key is the one read.
 * - At most `concurrency` reads in flight: 10,000 towers are not 10,000 queries at once.
 * - Rounds never overlap. A timer tick while a round runs is skipped, so a slow store delays
 *   rounds and never piles them up. A round asked for (`requestRound`: a bus gap, a caller that
 *   knows something changed) while one runs is run after it, not joined to it, because the
 *   running round's reads may predate that change; one such round at most, however many ask.
 * - A check may be read only every `everyRounds` timer rounds (towers: thousands on a node),
 *   each key at a round its hash places it, so a thousand sessions opened at once are not read
 *   at once; a requested round reads it anyway.
 * - A read that fails (store unavailable) keeps its work: the next round asks again. The outage
 *   is reported once (`onFailure`), and its end once (`onRecovered`) when a read succeeds again
 *   with none failing in its round; a round that read nothing proves nothing.
 */

/** One credential's check: what names it and the read that answers for it. */
export interface SweepCheck<V> {
  /** Names the credential: work under the same key shares one read per round. */
  key: string;
  /** Reads the credential from the store; throws when it cannot tell (store unavailable). */
  read: () => Promise<V>;
  /** Read once every this many timer rounds, spread evenly over them by key (default 1). */
  everyRounds?: number;
}

/** Store reads in flight at once in a round. */
export const SWEEP_CONCURRENCY = 16;

export interface CredentialSweepOptions<M, C extends SweepCheck<unknown>> {
  /** Period of the timer's rounds (ms). */
  periodMs: number;
  /** The live work now, each item with its check (items whose credential is not re-checked are left out). */
  live: () => Iterable<readonly [M, C]>;
  /** One credential's answer, as soon as it is read: ends what no longer stands. Not called after stop(). */
  settle: (verdict: Awaited<ReturnType<C['read']>>, members: readonly M[], check: C) => void;
  /** The first failed read of an outage. */
  onFailure: (err: unknown) => void;
  /** A read succeeded again after an outage was reported. */
  onRecovered: () => void;
  concurrency?: number;
}

interface Group<M, C> {
  check: C;
  members: M[];
}

export class CredentialSweep<M, C extends SweepCheck<unknown>> {
  readonly #o: CredentialSweepOptions<M, C>;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  #round: Promise<void> | null = null;
  #requested: Promise<void> | null = null;
  /** Timer rounds so far (skipped ones too), and the round at which each spread key is next due. */
  #rounds = 0;
  readonly #due = new Map<string, number>();
  /** An outage was reported and no read has succeeded since. */
  #failing = false;

  constructor(options: CredentialSweepOptions<M, C>) {
    this.#o = options;
  }

  /** Arms the timer (unref'd: it holds no process open); idempotent. */
  start(): void {
    this.#stopped = false;
    this.#timer ??= setInterval(() => this.#tick(), this.#o.periodMs);
    this.#timer.unref();
  }

  /** Stops the timer; a round under way reads and settles nothing more. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /**
   * A round of every check, spread ones included; resolves when it is over. Asked while a round
   * runs, it follows that round (one follow-up at most, shared by every caller meanwhile).
   */
  requestRound(): Promise<void> {
    if (!this.#round) return this.#start(true);
    this.#requested ??= this.#round.then(() => {
      this.#requested = null;
      return this.requestRound();
    });
    return this.#requested;
  }

  #tick(): void {
    this.#rounds++;
    if (!this.#round) void this.#start(false);
  }

  #start(all: boolean): Promise<void> {
    this.#round = this.#run(all).finally(() => {
      this.#round = null;
    });
    return this.#round;
  }

  async #run(all: boolean): Promise<void> {
    const groups = this.#groups();
    for (const key of this.#due.keys()) if (!groups.has(key)) this.#due.delete(key);
    const due = [...groups].filter(([key, group]) => this.#takes(key, group.check, all)).map(([, group]) => group);
    const outcome: { failure: { err: unknown } | null; succeeded: boolean } = { failure: null, succeeded: false };
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let group = due[next++]; group; group = due[next++]) {
        if (this.#stopped) return;
        let verdict: Awaited<ReturnType<C['read']>>;
        try {
          verdict = (await group.check.read()) as Awaited<ReturnType<C['read']>>;
        } catch (err) {
          outcome.failure ??= { err };
          continue;
        }
        outcome.succeeded = true;
        if (!this.#stopped) this.#o.settle(verdict, group.members, group.check);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#o.concurrency ?? SWEEP_CONCURRENCY, due.length) }, worker));
    if (outcome.failure) {
      if (!this.#failing) this.#o.onFailure(outcome.failure.err);
      this.#failing = true;
    } else if (outcome.succeeded && this.#failing) {
      this.#failing = false;
      this.#o.onRecovered();
    }
  }

  #groups(): Map<string, Group<M, C>> {
    const groups = new Map<string, Group<M, C>>();
    for (const [member, check] of this.#o.live()) {
      const group = groups.get(check.key);
      if (group) group.members.push(member);
      else groups.set(check.key, { check, members: [member] });
    }
    return groups;
  }

  /** Whether this round reads the check (`all`: a requested round reads every one); a spread check read is next due `everyRounds` later. */
  #takes(key: string, check: C, all: boolean): boolean {
    const every = check.everyRounds ?? 1;
    if (every <= 1) return true;
    // First seen (its CONNECT or upgrade just read the store): due within the next `every` rounds.
    const due = this.#due.get(key) ?? this.#rounds + (spreadHash(key) % every);
    if (!all && due > this.#rounds) {
      this.#due.set(key, due);
      return false;
    }
    this.#due.set(key, this.#rounds + every);
    return true;
  }
}

/** A key's place among the rounds (FNV-1a): spread checks fall evenly over them. */
function spreadHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

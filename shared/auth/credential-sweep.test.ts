/**
 * The shared re-check loop (credential-sweep.ts) on its own: what it reads, when, how many at once,
 * what it reports, and what it settles. Reads are functions the test answers (the store behind
 * them is the callers' business: broker/audit-lost-revocation.test.ts and
 * api/feeds-revocation.test.ts run it against real stores). Time is vitest's fake timers.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CredentialSweep, SWEEP_CONCURRENCY, type SweepCheck } from './credential-sweep.js';

const PERIOD = 1_000;

interface Check extends SweepCheck<boolean> {
  note: string;
}

/** A read the test answers later. */
class Held {
  readonly pending: Array<{ key: string; answer: (stands: boolean) => void; fail: (err: Error) => void }> = [];

  read(key: string): () => Promise<boolean> {
    return () =>
      new Promise<boolean>((resolve, reject) => {
        this.pending.push({ key, answer: resolve, fail: reject });
      });
  }
}

let sweep: CredentialSweep<string, Check> | null;
let live: Array<[string, Check]>;
let settled: Array<{ stands: boolean; members: readonly string[]; note: string }>;
let failures: unknown[];
let recoveries: number;

function newSweep(concurrency?: number): CredentialSweep<string, Check> {
  sweep = new CredentialSweep<string, Check>({
    periodMs: PERIOD,
    live: () => live,
    settle: (stands, members, check) => settled.push({ stands, members, note: check.note }),
    onFailure: (err) => failures.push(err),
    onRecovered: () => recoveries++,
    ...(concurrency !== undefined && { concurrency }),
  });
  return sweep;
}

const entry = (member: string, key: string, read: () => Promise<boolean>, extra: Partial<Check> = {}): [string, Check] => [
  member,
  { key, read, note: member, ...extra },
];

/** Lets the reads a round can start, start (their promise chains settle). */
const flush = () => vi.advanceTimersByTimeAsync(0);

beforeEach(() => {
  vi.useFakeTimers();
  sweep = null;
  live = [];
  settled = [];
  failures = [];
  recoveries = 0;
});

afterEach(() => {
  sweep?.stop();
  vi.useRealTimers();
});

describe('CredentialSweep', () => {
  it('reads each distinct credential once a round and settles it with every member under it, as the first check seen', async () => {
    const reads = new Map<string, number>();
    const read = (key: string, stands: boolean) => () => {
      reads.set(key, (reads.get(key) ?? 0) + 1);
      return Promise.resolve(stands);
    };
    live = [entry('feed-1', 'k1', read('k1', false)), entry('feed-2', 'k2', read('k2', true)), entry('feed-3', 'k1', read('k1', false))];
    newSweep().start();
    await vi.advanceTimersByTimeAsync(PERIOD);
    expect(Object.fromEntries(reads)).toEqual({ k1: 1, k2: 1 });
    expect(settled).toEqual([
      { stands: false, members: ['feed-1', 'feed-3'], note: 'feed-1' },
      { stands: true, members: ['feed-2'], note: 'feed-2' },
    ]);
    await vi.advanceTimersByTimeAsync(PERIOD);
    expect(Object.fromEntries(reads)).toEqual({ k1: 2, k2: 2 });
  });

  it('skips timer ticks while a round is under way, and never runs two rounds at once', async () => {
    const held = new Held();
    live = [entry('s1', 'k1', held.read('k1'))];
    newSweep().start();
    await vi.advanceTimersByTimeAsync(PERIOD);
    expect(held.pending).toHaveLength(1);
    // A slow store: five ticks pass while the read is out; none starts a round.
    await vi.advanceTimersByTimeAsync(5 * PERIOD);
    expect(held.pending).toHaveLength(1);
    held.pending[0]!.answer(true);
    await flush();
    // Skipped ticks are not made up: the next round is the next tick's.
    expect(held.pending).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(PERIOD);
    expect(held.pending).toHaveLength(2);
  });

  it('runs a round asked for during a round after it, once for every caller meanwhile, and resolves them when it is over', async () => {
    const held = new Held();
    live = [entry('s1', 'k1', held.read('k1'))];
    const s = newSweep();
    const first = s.requestRound();
    await flush();
    const asked = [s.requestRound(), s.requestRound(), s.requestRound()];
    await flush();
    // Not joined to the running round, whose read was made before the callers asked.
    expect(held.pending).toHaveLength(1);
    held.pending[0]!.answer(true);
    await first;
    await flush();
    expect(held.pending).toHaveLength(2);
    let done = 0;
    for (const p of asked) void p.then(() => done++);
    await flush();
    expect(done).toBe(0);
    held.pending[1]!.answer(false);
    await Promise.all(asked);
    expect(held.pending).toHaveLength(2);
    expect(settled.map((x) => x.stands)).toEqual([true, false]);
  });

  it(`holds at most ${SWEEP_CONCURRENCY} reads in flight by default (or the bound given), and still reads every credential`, async () => {
    for (const [bound, concurrency] of [
      [SWEEP_CONCURRENCY, undefined],
      [3, 3],
    ] as const) {
      const held = new Held();
      live = Array.from({ length: 40 }, (_, i) => entry(`s${i}`, `k${i}`, held.read(`k${i}`)));
      settled = [];
      const round = newSweep(concurrency).requestRound();
      await flush();
      let answered = 0;
      while (answered < 40) {
        expect(held.pending.length - answered).toBeLessThanOrEqual(bound);
        expect(held.pending.length - answered).toBe(Math.min(bound, 40 - answered));
        held.pending[answered++]!.answer(true);
        await flush();
      }
      await round;
      expect(new Set(held.pending.map((p) => p.key)).size).toBe(40);
      expect(settled).toHaveLength(40);
    }
  });

  it('reads a spread check once every `everyRounds` timer rounds, spread over them by key; a requested round reads it anyway', async () => {
    const reads = new Map<string, number[]>();
    let round = 0;
    const read = (key: string) => () => {
      reads.set(key, [...(reads.get(key) ?? []), round]);
      return Promise.resolve(true);
    };
    live = Array.from({ length: 200 }, (_, i) => entry(`t${i}`, `tower:${i}`, read(`tower:${i}`), { everyRounds: 10 }));
    live.push(entry('console', 'user:u', read('user:u')));
    const s = newSweep();
    s.start();
    const perRound: number[] = [];
    for (round = 1; round <= 30; round++) {
      const before = [...reads.values()].reduce((n, r) => n + r.length, 0);
      await vi.advanceTimersByTimeAsync(PERIOD);
      perRound.push([...reads.values()].reduce((n, r) => n + r.length, 0) - before - 1);
    }
    // The unspread check every round; each spread one once in every 10, 10 rounds apart.
    expect(reads.get('user:u')).toHaveLength(30);
    for (let i = 0; i < 200; i++) {
      const at = reads.get(`tower:${i}`)!;
      expect(at).toHaveLength(3);
      expect(at[0]).toBeLessThanOrEqual(10);
      expect([at[1]! - at[0]!, at[2]! - at[1]!]).toEqual([10, 10]);
    }
    // Spread: 200 first seen at once are not read in one round (20 a round on average).
    expect(Math.max(...perRound)).toBeLessThan(50);
    round = 100;
    await s.requestRound();
    for (let i = 0; i < 200; i++) expect(reads.get(`tower:${i}`)!.at(-1)).toBe(100);
  });

  it('keeps what it cannot read, reports an outage once and its end once, and a round that read nothing ends no outage', async () => {
    let down = true;
    const read = () => (down ? Promise.reject(new Error('store unavailable')) : Promise.resolve(false));
    // A spread check only: most rounds read nothing.
    live = [entry('t1', 'tower:1', read, { everyRounds: 5 }), entry('t2', 'tower:2', read, { everyRounds: 5 })];
    newSweep().start();
    await vi.advanceTimersByTimeAsync(11 * PERIOD);
    expect(failures).toEqual([new Error('store unavailable')]);
    expect(recoveries).toBe(0);
    expect(settled).toEqual([]);
    down = false;
    await vi.advanceTimersByTimeAsync(10 * PERIOD);
    expect(recoveries).toBe(1);
    expect(failures).toHaveLength(1);
    // Each read twice in those 10 rounds, and settled each time.
    expect(settled.map((x) => x.note).sort()).toEqual(['t1', 't1', 't2', 't2']);
    down = true;
    await vi.advanceTimersByTimeAsync(5 * PERIOD);
    expect(failures).toHaveLength(2);
  });

  it('a round under way when stopped reads and settles nothing more, and no timer is left', async () => {
    const held = new Held();
    live = [entry('s1', 'k1', held.read('k1')), entry('s2', 'k2', held.read('k2')), entry('s3', 'k3', held.read('k3'))];
    const s = newSweep(1);
    s.start();
    await vi.advanceTimersByTimeAsync(PERIOD);
    expect(held.pending).toHaveLength(1);
    s.stop();
    expect(vi.getTimerCount()).toBe(0);
    held.pending[0]!.answer(false);
    await flush();
    expect(held.pending).toHaveLength(1);
    expect(settled).toEqual([]);
  });
});

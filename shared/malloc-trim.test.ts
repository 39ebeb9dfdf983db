import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadMallocTrim, MallocTrimmer, onMajorGc, type TrimFn, type TrimReport } from './malloc-trim.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** A trim that finishes when the test says so. */
function heldTrim(): { trim: TrimFn; calls: Array<(err: Error | null, released: boolean) => void> } {
  const calls: Array<(err: Error | null, released: boolean) => void> = [];
  return { trim: (done) => void calls.push(done), calls };
}

describe('MallocTrimmer', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const trimmer = (trim: TrimFn, reports: TrimReport[] = [], errors: Error[] = []) =>
    new MallocTrimmer({ trim, minIntervalMs: 5000, now: () => Date.now(), onTrim: (r) => reports.push(r), onError: (e) => errors.push(e) });

  it('trims after a request, then at most once per interval, deferring a request inside it', async () => {
    const t = heldTrim();
    const reports: TrimReport[] = [];
    const m = trimmer(t.trim, reports);
    m.request();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(20);
    t.calls[0]!(null, true);
    expect(reports).toEqual([{ ms: 20, released: true }]);

    m.request();
    m.request();
    await vi.advanceTimersByTimeAsync(4979);
    expect(t.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    // Two requests inside the interval: one trim, when the interval is over.
    expect(t.calls).toHaveLength(2);
    t.calls[1]!(null, false);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.calls).toHaveLength(2);
    expect(reports.map((r) => r.released)).toEqual([true, false]);
  });

  it('never runs two trims at once: requests during a slow trim get one more after it', async () => {
    const t = heldTrim();
    const m = trimmer(t.trim);
    m.request();
    await vi.advanceTimersByTimeAsync(0);
    m.request();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(t.calls).toHaveLength(1);
    t.calls[0]!(null, true);
    // The interval counts from the first trim's start: long over, so the next runs at once.
    await vi.advanceTimersByTimeAsync(0);
    expect(t.calls).toHaveLength(2);
  });

  it('reports a failed trim and keeps trimming', async () => {
    const t = heldTrim();
    const errors: Error[] = [];
    const m = trimmer(t.trim, [], errors);
    m.request();
    await vi.advanceTimersByTimeAsync(0);
    t.calls[0]!(new Error('boom'), false);
    expect(errors.map((e) => e.message)).toEqual(['boom']);
    m.request();
    await vi.advanceTimersByTimeAsync(5000);
    expect(t.calls).toHaveLength(2);
  });

  it('stops: a deferred trim never runs, and stop() waits for the one in progress', async () => {
    const t = heldTrim();
    const m = trimmer(t.trim);
    m.request();
    await vi.advanceTimersByTimeAsync(0);
    m.request();
    let stopped = false;
    const stopping = m.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(false);
    t.calls[0]!(null, true);
    await stopping;
    m.request();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.calls).toHaveLength(1);
  });
});

describe('onMajorGc', () => {
  it('calls back after a full GC of this thread, until unsubscribed', async () => {
    let calls = 0;
    const seen = new Promise<void>((resolve) => {
      const off = onMajorGc(() => {
        calls++;
        off();
        resolve();
      });
    });
    gc();
    await seen;
    gc();
    // The observer delivers entries asynchronously: give a second delivery every chance to come.
    await new Promise((r) => setImmediate(r));
    expect(calls).toBe(1);
  });
});

// koffi ships prebuilt binaries for Linux (an optional dependency); CI runs Linux with glibc.
const loaded = loadMallocTrim();
const available = !('unavailable' in loaded);
if (!available && process.env.CI !== 'true') console.log(`malloc_trim test skipped: ${(loaded as { unavailable: string }).unavailable}`);

describe.runIf(available || process.env.CI === 'true')('loadMallocTrim', () => {
  it("calls glibc's malloc_trim(0) on the thread pool and says whether memory went back", async () => {
    if ('unavailable' in loaded) throw new Error(`malloc_trim unavailable under CI: ${loaded.unavailable}`);
    // Free malloc'd memory in the middle of the heap, where free() cannot give it back: every
    // other 64 KB Buffer (below glibc's mmap threshold, so from the heap) is collected.
    const buffers = Array.from({ length: 256 }, () => Buffer.allocUnsafeSlow(64 * 1024).fill(1));
    const kept = buffers.filter((_, i) => i % 2 === 0);
    buffers.length = 0;
    gc();
    gc();
    const released = await new Promise<boolean>((resolve, reject) => loaded.trim((err, r) => (err ? reject(err) : resolve(r))));
    // malloc_trim(0) returns 1 when it gave memory back to the system.
    expect(released).toBe(true);
    expect(kept.every((b) => b[0] === 1)).toBe(true);
  });
});

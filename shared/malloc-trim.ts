/**
 * Gives the memory glibc's malloc keeps after it was freed back to the operating system.
 *
 * glibc returns freed memory to the kernel only from the top of its heap; what is freed in the
 * middle (a burst of tower connections' socket and TLS buffers, finalized native objects after a
 * GC) stays resident, as RSS, until `malloc_trim(0)` releases its whole pages (madvise). Measured
 * in bench (j), with 5,000 idle towers connected: a trim after the full GC took the main arena
 * from 45.4 to 30.2 MB and RSS per tower from 22.0 to 18.5 KB (README, Benchmarks).
 *
 * Node has no binding for it: glibc's function is called through koffi (a maintained FFI library
 * shipped with prebuilt binaries, an optional dependency), on libuv's thread pool, so the event
 * loop never waits for it (a trim of a fragmented 45 MB heap took up to 32 ms). Where koffi or
 * glibc is missing (macOS, Alpine's musl) trimming is off and says why.
 *
 * A trim follows every major GC (the moment native memory held by collected objects is freed),
 * at most once per `minIntervalMs`: a GC inside the interval defers its trim, never drops it.
 */
import { createRequire } from 'node:module';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';

/** Runs one malloc_trim(0) off the event loop; `released` says whether memory went back. */
export type TrimFn = (done: (err: Error | null, released: boolean) => void) => void;

export type MallocTrimLoad = { trim: TrimFn } | { unavailable: string };

interface KoffiFunction {
  async: (pad: number, cb: (err: unknown, result: number) => void) => void;
}
interface Koffi {
  load(path: string): { func(signature: string): KoffiFunction };
}

/** glibc's malloc_trim through koffi, or why it cannot be had on this host. */
export function loadMallocTrim(): MallocTrimLoad {
  if (process.platform !== 'linux') return { unavailable: `not Linux (${process.platform})` };
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (err) {
    return { unavailable: `koffi is not installed (${(err as Error).message.split('\n')[0]})` };
  }
  let fn: KoffiFunction;
  try {
    fn = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)');
  } catch (err) {
    return { unavailable: `no glibc malloc_trim (${(err as Error).message})` };
  }
  return {
    trim: (done) =>
      fn.async(0, (err, result) => {
        if (err) done(err instanceof Error ? err : new Error(String(err)), false);
        else done(null, result === 1);
      }),
  };
}

/** Calls `listener` after each major (mark-compact) GC of this thread; returns the unsubscribe. */
export function onMajorGc(listener: () => void): () => void {
  const observer = new PerformanceObserver((list) => {
    if (list.getEntries().some(isMajorGc)) listener();
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}

function isMajorGc(e: PerformanceEntry): boolean {
  // A 'gc' entry's detail (Node ≥ 16) names the kind of collection.
  return ((e as PerformanceEntry & { detail?: { kind?: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;
}

export interface TrimReport {
  ms: number;
  released: boolean;
}

export interface MallocTrimmerOptions {
  trim: TrimFn;
  /** Shortest time between the starts of two trims. */
  minIntervalMs: number;
  now?: () => number;
  onTrim?: (r: TrimReport) => void;
  onError?: (err: Error) => void;
}

/** Schedules trims: one after each request, at most one per interval, never two at once. */
export class MallocTrimmer {
  readonly #o: MallocTrimmerOptions;
  readonly #now: () => number;
  #lastStart = -Infinity;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #wanted = false;
  #stopped = false;

  constructor(opts: MallocTrimmerOptions) {
    this.#o = opts;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Memory may have been freed (a major GC ran): trim now, or when the interval allows. */
  request(): void {
    if (this.#stopped) return;
    this.#wanted = true;
    this.#schedule();
  }

  /** No further trims; resolves once a trim in progress has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  #schedule(): void {
    if (this.#timer !== null || this.#running !== null || !this.#wanted || this.#stopped) return;
    const wait = Math.max(0, this.#lastStart + this.#o.minIntervalMs - this.#now());
    this.#timer = setTimeout(() => this.#run(), wait);
    // Pending trims never keep a process alive.
    this.#timer.unref();
  }

  #run(): void {
    this.#timer = null;
    if (this.#stopped || !this.#wanted) return;
    this.#wanted = false;
    const start = this.#now();
    this.#lastStart = start;
    this.#running = new Promise<void>((resolve) => {
      this.#o.trim((err, released) => {
        this.#running = null;
        if (err) this.#o.onError?.(err);
        else this.#o.onTrim?.({ ms: this.#now() - start, released });
        resolve();
        // Requests that came while this trim ran get one more, after the interval.
        this.#schedule();
      });
    });
  }
}

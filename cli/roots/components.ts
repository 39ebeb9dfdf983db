/**
 * Each process' components are declared once, in start order; they stop in reverse order. That
 * order IS the drain order: whatever feeds a component is declared after it, so it stops first
 * (the API and the pipeline stop before the command service, the sinks and the broker they use).
 */
import type { Logger } from '../../shared/logger.js';

export interface Component {
  name: string;
  start(): Promise<unknown> | unknown;
  stop(): Promise<unknown> | unknown;
}

export interface RunningComponents {
  /** Stops every started component in reverse order; a failure is logged and the rest still stop. */
  stop(): Promise<void>;
}

/** Thrown by startComponents when its signal aborted the start (a SIGTERM before the process was ready). */
export class StartInterrupted extends Error {
  constructor() {
    super('start interrupted');
    this.name = 'StartInterrupted';
  }
}

/**
 * Waits for `start`, or rejects with StartInterrupted as soon as `signal` aborts. The start given
 * up on is not awaited: it may wait on a store or Redis that does not answer for tens of seconds
 * (MongoDB's server selection takes 30 s), and the process is about to exit.
 */
function unlessInterrupted(start: Promise<unknown>, signal: AbortSignal | undefined): Promise<unknown> {
  if (!signal) return start;
  if (signal.aborted) return Promise.reject(new StartInterrupted());
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new StartInterrupted());
    signal.addEventListener('abort', onAbort, { once: true });
    start.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Starts `components` in order. If one fails, or `signal` aborts before the last has started,
 * those already started are stopped (in reverse) and the error (StartInterrupted) is rethrown.
 */
export async function startComponents(components: readonly Component[], logger: Logger, signal?: AbortSignal): Promise<RunningComponents> {
  const started: Component[] = [];
  const stopAll = async (): Promise<void> => {
    for (const c of started.splice(0).reverse()) {
      try {
        await c.stop();
      } catch (err) {
        logger.error({ module: 'lifecycle', component: c.name, err }, 'component failed to stop');
      }
    }
  };
  for (const c of components) {
    try {
      await unlessInterrupted(Promise.resolve(c.start()), signal);
    } catch (err) {
      await stopAll();
      throw err;
    }
    started.push(c);
  }
  let stopping: Promise<void> | null = null;
  return { stop: () => (stopping ??= stopAll()) };
}

/** A component from a pair of functions. */
export function component(name: string, start: () => Promise<unknown> | unknown, stop: () => Promise<unknown> | unknown): Component {
  return { name, start, stop };
}

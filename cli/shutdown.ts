/**
 * Graceful shutdown on SIGINT/SIGTERM: run `stop` once, then exit 0. The whole shutdown, writing
 * out buffered log lines included, is bounded by `timeoutMs` (--shutdown-timeout-ms): at the
 * deadline the process exits 1 whatever is still pending (a stuck component, a log reader that
 * stopped reading). A second signal exits at once with 130.
 */
import { flushLogger, type Logger } from '../shared/logger.js';
import { StartInterrupted } from './roots/components.js';

/** Longest wait for buffered log lines to be written once everything has stopped. */
const FLUSH_MAX_MS = 1000;

export function onShutdownSignal(stop: () => Promise<void>, logger: Logger, timeoutMs: number): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ module: 'cli', signal }, 'second signal: exiting immediately');
      process.exit(130);
    }
    stopping = true;
    const deadline = Date.now() + timeoutMs;
    logger.info({ module: 'cli', signal, timeout_ms: timeoutMs }, 'shutting down gracefully');
    // Not unref'd: this timer is what guarantees the exit when everything else is stuck.
    setTimeout(() => {
      logger.error({ module: 'cli', timeout_ms: timeoutMs }, 'graceful shutdown timed out');
      process.exit(1);
    }, timeoutMs);
    const exit = async (code: number): Promise<never> => {
      // Log lines a stalled reader never takes must not turn a clean stop into a timeout.
      await flushLogger(logger, Math.max(0, Math.min(FLUSH_MAX_MS, deadline - Date.now() - 100)));
      process.exit(code);
    };
    stop().then(
      () => {
        logger.info({ module: 'cli' }, 'stopped');
        void exit(0);
      },
      (err: unknown) => {
        logger.error({ module: 'cli', err }, 'shutdown failed');
        void exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/**
 * Starts a process role with `start(signal)` and keeps it running until SIGINT/SIGTERM stops it
 * (onShutdownSignal). A signal during startup gives the start up (`signal` aborts): what had
 * started stops, the data dir's lock is released, and the process exits 0, without waiting for a
 * component still starting, e.g. a store or Redis that does not answer (MongoDB's server selection
 * takes 30 s, longer than the shutdown may). A start that fails on its own rejects as before.
 */
export async function runUntilSignal(start: (signal: AbortSignal) => Promise<{ stop(): Promise<void> }>, logger: Logger, timeoutMs: number): Promise<never> {
  const interrupt = new AbortController();
  const starting = start(interrupt.signal);
  onShutdownSignal(
    async () => {
      interrupt.abort();
      await (await starting.catch(() => null))?.stop();
    },
    logger,
    timeoutMs,
  );
  // An interrupted start is not a failed one: the shutdown handler exits once it is undone.
  await starting.catch((err: unknown) => (err instanceof StartInterrupted ? undefined : Promise.reject(err)));
  // Keep running until a signal arrives.
  return new Promise<never>(() => {});
}

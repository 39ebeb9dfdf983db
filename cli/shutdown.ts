/**
 * Graceful shutdown on SIGINT/SIGTERM: run `stop` once, then exit 0. The whole shutdown, writing
 * out buffered log lines included, is bounded by `timeoutMs` (--shutdown-timeout-ms): at the
 * deadline the process exits 1 whatever is still pending (a stuck component, a log reader that
 * stopped reading). A second signal exits at once with 130.
 */
import { flushLogger, type Logger } from '../shared/logger.js';

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

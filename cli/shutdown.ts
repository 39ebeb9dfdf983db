/**
 * Graceful shutdown on SIGINT/SIGTERM: run `stop` once, bounded by a timeout; a second signal
 * or the timeout forces exit with a non-zero code.
 */
import type { Logger } from '../shared/logger.js';

export function onShutdownSignal(stop: () => Promise<void>, logger: Logger, timeoutMs: number): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ module: 'cli', signal }, 'second signal: exiting immediately');
      process.exit(130);
    }
    stopping = true;
    logger.info({ module: 'cli', signal }, 'shutting down gracefully');
    const timer = setTimeout(() => {
      logger.error({ module: 'cli', timeout_ms: timeoutMs }, 'graceful shutdown timed out');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    stop().then(
      () => {
        logger.info({ module: 'cli' }, 'stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ module: 'cli', err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

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

/**
 * Starts `components` in order. If one fails, those already started are stopped (in reverse)
 * and the error is rethrown.
 */
export async function startComponents(components: readonly Component[], logger: Logger): Promise<RunningComponents> {
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
      await c.start();
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

/**
 * Every process role trims glibc's malloc heap after major GCs (shared/malloc-trim.ts). Loading
 * koffi takes ~16 ms, so it happens a second after start, off the start-up path.
 */
import type { Logger } from '../../shared/logger.js';
import { loadMallocTrim, MallocTrimmer, onMajorGc, type MallocTrimLoad, type TrimReport } from '../../shared/malloc-trim.js';
import type { Counters } from '../../shared/metrics.js';
import { component, type Component } from './components.js';

const LOAD_AFTER_MS = 1000;

export function mallocTrimComponent(
  intervalS: number,
  logger: Logger,
  counters: Counters,
  opts: { loadAfterMs?: number; onTrim?: (r: TrimReport) => void; load?: () => MallocTrimLoad } = {},
): Component {
  const log = logger.child({ module: 'malloc-trim' });
  let loadTimer: NodeJS.Timeout | null = null;
  let trimmer: MallocTrimmer | null = null;
  let unsubscribe: (() => void) | null = null;
  return component(
    'malloc-trim',
    () => {
      if (intervalS === 0) return;
      loadTimer = setTimeout(() => {
        loadTimer = null;
        const loaded = (opts.load ?? loadMallocTrim)();
        if ('unavailable' in loaded) {
          log.info({ reason: loaded.unavailable }, 'freed native memory is not trimmed on this host');
          return;
        }
        const t = new MallocTrimmer({
          trim: loaded.trim,
          minIntervalMs: intervalS * 1000,
          onTrim: (r) => {
            counters.inc('malloc_trims_total', { released: String(r.released) });
            counters.observe('malloc_trim_duration_seconds', undefined, r.ms / 1000);
            opts.onTrim?.(r);
          },
          onError: (err) => log.warn({ err }, 'malloc_trim failed'),
        });
        trimmer = t;
        unsubscribe = onMajorGc(() => t.request());
      }, opts.loadAfterMs ?? LOAD_AFTER_MS);
      loadTimer.unref();
    },
    async () => {
      if (loadTimer) clearTimeout(loadTimer);
      unsubscribe?.();
      await trimmer?.stop();
    },
  );
}

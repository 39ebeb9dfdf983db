import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../shared/logger.js';
import { loadMallocTrim, type TrimReport } from '../../shared/malloc-trim.js';
import { Counters } from '../../shared/metrics.js';
import { LogCapture } from '../../test/support/log-lines.js';
import { mallocTrimComponent } from './malloc-trim.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
// The skip line, if any, is printed by shared/malloc-trim.test.ts.
const available = !('unavailable' in loadMallocTrim());

describe('the malloc-trim component without glibc (macOS, musl)', () => {
  it('says once why it does not trim, and never trims', async () => {
    const log = new LogCapture();
    const c = mallocTrimComponent(5, createLogger('info', log), new Counters(), { loadAfterMs: 0, load: () => ({ unavailable: 'not Linux (darwin)' }), onTrim: () => expect.fail('trimmed') });
    await c.start();
    // The load timer (0 ms) fires before this one; pino writes the line synchronously.
    await new Promise((r) => setTimeout(r, 5));
    gc();
    await new Promise((r) => setTimeout(r, 5));
    await c.stop();
    expect(log.lines.map((l) => JSON.parse(l) as { msg: string; reason: string; module: string })).toEqual([
      expect.objectContaining({ msg: 'freed native memory is not trimmed on this host', reason: 'not Linux (darwin)', module: 'malloc-trim' }),
    ]);
  });
});

describe.runIf(available || process.env.CI === 'true')('the malloc-trim component of every process role', () => {
  it('trims after a major GC and counts it in the Prometheus families', async () => {
    const counters = new Counters();
    const log = new LogCapture();
    let trimmed!: (r: TrimReport) => void;
    const first = new Promise<TrimReport>((resolve) => (trimmed = resolve));
    const c = mallocTrimComponent(5, createLogger('info', log), counters, { loadAfterMs: 0, onTrim: (r) => trimmed(r) });
    await c.start();
    // koffi is loaded on a timer after start: a GC before then is not watched yet.
    await new Promise((r) => setTimeout(r, 0));
    gc();
    const r = await first;
    await c.stop();
    expect(r.ms).toBeGreaterThanOrEqual(0);
    const text = await counters.metrics();
    expect(text).toMatch(new RegExp(`^malloc_trims_total\\{released="${r.released}"\\} 1$`, 'm'));
    expect(text).toMatch(/^malloc_trim_duration_seconds_count 1$/m);
    expect(log.lines).toEqual([]);
  });

  it('is off at 0: koffi is never loaded', async () => {
    let loads = 0;
    const c = mallocTrimComponent(0, createLogger('info', new LogCapture()), new Counters(), { loadAfterMs: 0, load: () => (loads++, loadMallocTrim()) });
    await c.start();
    await new Promise((r) => setTimeout(r, 5));
    gc();
    await c.stop();
    expect(loads).toBe(0);
  });
});

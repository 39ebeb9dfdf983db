import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ServerWindow } from './server-window.js';

/** An exposition holding `usage` cumulative accept counts per bucket bound, and loop-lag gauges. */
function exposition(usage: Record<string, number>, lag: { p99: number; max: number }): string {
  return [
    ...Object.entries(usage).map(([le, n]) => `ingest_duration_seconds_bucket{le="${le}",kind="usage"} ${n}`),
    ...Object.keys(usage).map((le) => `ingest_duration_seconds_bucket{le="${le}",kind="acks"} 999`),
    `nodejs_eventloop_lag_p99_seconds ${lag.p99}`,
    `nodejs_eventloop_lag_max_seconds ${lag.max}`,
  ].join('\n');
}

describe('ServerWindow', () => {
  it('reports the accepts and the loop delay between the scrapes at either end, and the CPU of the given processes', async () => {
    const scrapes = [
      exposition({ '0.0005': 100, '0.001': 100, '0.0025': 100, '+Inf': 100 }, { p99: 0.5, max: 0.9 }),
      exposition({ '0.0005': 150, '0.001': 190, '0.0025': 199, '+Inf': 200 }, { p99: 0.0125, max: 0.034 }),
    ];
    const window = new ServerWindow({ pids: [process.pid], metrics: async () => scrapes.shift() ?? null });
    window.open();
    // Some CPU for this process to use inside the window.
    let x = 0;
    for (let i = 0; i < 2e6; i++) x += Math.sqrt(i);
    expect(x).toBeGreaterThan(0);
    window.close();
    const f = await window.figures(1_000);
    // 100 accepts in the window: half under 0.5 ms, 90 under 1 ms, 99 under 2.5 ms.
    expect(f.accept_ms).toEqual({ p50: 0.5, p99: 2.5 });
    // Beyond prom-client's 10 ms sampling period.
    expect(f.server_delay_ms).toEqual({ p99: 2.5, max: 24 });
    // CPU time comes from /proc (Linux); elsewhere it is left out.
    if (existsSync(`/proc/${process.pid}/stat`)) expect(f.server_cpu).toEqual({ us_per_event: expect.any(Number), cores: expect.any(Number) });
    else expect(f.server_cpu).toBeUndefined();
  });

  it('reports nothing it could not measure', async () => {
    const none = new ServerWindow();
    none.open();
    none.close();
    expect(await none.figures(10)).toEqual({});
    const unreadable = new ServerWindow({ metrics: async () => null });
    unreadable.open();
    unreadable.close();
    expect(await unreadable.figures(10)).toEqual({});
  });
});

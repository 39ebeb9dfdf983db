/** The Counters facade over prom-client: the call sites' API, and an exposition that never fails. */
import { describe, expect, it } from 'vitest';
import { Counters } from './metrics.js';

describe('Counters', () => {
  it('counts by label set, sums over labels, and exposes declared families with HELP even at zero', async () => {
    const c = new Counters();
    c.inc('mqtt_rejected_total', { reason: 'rate_limited' });
    c.inc('mqtt_rejected_total', { reason: 'rate_limited' }, 2);
    c.inc('mqtt_rejected_total', { reason: 'payload_too_large' });
    expect(c.get('mqtt_rejected_total', { reason: 'rate_limited' })).toBe(3);
    expect(c.total('mqtt_rejected_total')).toBe(4);
    const text = await c.metrics();
    expect(text).toContain('# HELP mqtt_rejected_total MQTT packets or connections refused');
    expect(text).toContain('# TYPE mqtt_rejected_total counter');
    expect(text).toContain('mqtt_rejected_total{reason="rate_limited"} 3');
    expect(text).toMatch(/^usage_batches_total 0$/m);
  });

  it('drops undeclared labels instead of throwing, and still exposes an undocumented counter', async () => {
    const c = new Counters();
    c.inc('mqtt_rejected_total', { reason: 'x', surprise: 'y' });
    c.inc('brand_new_total', { tenant: 't1' }, 5);
    const text = await c.metrics();
    expect(text).toContain('mqtt_rejected_total{reason="x"} 1');
    expect(text).toContain('# HELP brand_new_total Undocumented metric');
    expect(text).toContain('brand_new_total{tenant="t1"} 5');
  });

  it('reads gauges from their sources at scrape time; a failing source reads NaN', async () => {
    const c = new Counters();
    let connections = 2;
    c.gauge('mqtt_connections', () => connections);
    c.gauge('uplink_queue_depth', async () => {
      throw new Error('redis is down');
    });
    expect(await c.metrics()).toMatch(/^mqtt_connections 2$/m);
    connections = 5;
    const text = await c.metrics();
    expect(text).toMatch(/^mqtt_connections 5$/m);
    expect(text).toContain('# TYPE uplink_queue_depth gauge');
    // prom-client writes "Nan"; Prometheus parses special values case-insensitively.
    expect(text).toMatch(/^uplink_queue_depth nan$/im);
    expect(() => c.gauge('usage_batches_total', () => 1)).toThrow(/not a gauge/);
  });

  it('observes histograms into the declared buckets', async () => {
    const c = new Counters();
    c.observe('ingest_batch_events', undefined, 7);
    c.observe('ingest_duration_seconds', { kind: 'usage' }, 0.003);
    const text = await c.metrics();
    expect(text).toContain('ingest_batch_events_bucket{le="10"} 1');
    expect(text).toContain('ingest_batch_events_bucket{le="5"} 0');
    expect(text).toContain('ingest_duration_seconds_count{kind="usage"} 1');
  });
});

/** Reading /metrics in the browser: the exposition format, rates across restarts, histogram quantiles. */
import { describe, expect, it } from 'vitest';
import { histogramQuantile, parsePrometheus, ratePerSecond, total } from './prometheus';

const TEXT = `# TYPE decisions_sent_total counter
decisions_sent_total{effect="allow"} 90
decisions_sent_total{effect="deny"} 10
uplink_dropped_total{tower="T\\"1",reason="bad json"} 2
# TYPE decision_latency_seconds histogram
decision_latency_seconds_bucket{le="0.01"} 50
decision_latency_seconds_bucket{le="0.1"} 90
decision_latency_seconds_bucket{le="+Inf"} 100
not a sample line
`;

describe('parsePrometheus', () => {
  it('reads samples with their labels, skipping what is not a sample', () => {
    const { samples, types } = parsePrometheus(TEXT);
    expect(total(samples, 'decisions_sent_total')).toBe(100);
    expect(samples.find((s) => s.name === 'uplink_dropped_total')!.labels).toEqual({ tower: 'T"1', reason: 'bad json' });
    expect(types.get('decision_latency_seconds')).toBe('histogram');
    expect(samples).toHaveLength(6);
  });

  it('turns two readings into a rate, counting from zero after a restart', () => {
    expect(ratePerSecond(100, 150, 10)).toBe(5);
    expect(ratePerSecond(100, 20, 10)).toBe(2);
  });

  it('interpolates quantiles inside histogram buckets', () => {
    const buckets = [
      { le: 0.01, count: 50 },
      { le: 0.1, count: 90 },
      { le: Infinity, count: 100 },
    ];
    expect(histogramQuantile(buckets, 0.5)).toBeCloseTo(0.01);
    expect(histogramQuantile(buckets, 0.7)).toBeCloseTo(0.055);
    expect(histogramQuantile(buckets, 0.99)).toBe(0.1);
    expect(histogramQuantile([{ le: Infinity, count: 0 }], 0.5)).toBeNull();
  });
});

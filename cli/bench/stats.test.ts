import { describe, expect, it } from 'vitest';
import { bucketQuantile, bucketsDelta, gaugeValue, histogramBuckets, median } from './stats.js';

const exposition = (n: (le: string) => number) =>
  [
    '# HELP ingest_duration_seconds Time to accept one uplink message',
    '# TYPE ingest_duration_seconds histogram',
    ...['0.001', '0.0025', '0.005', '+Inf'].flatMap((le) => [
      `ingest_duration_seconds_bucket{le="${le}",kind="usage"} ${n(le)}`,
      `ingest_duration_seconds_bucket{le="${le}",kind="acks"} 1000`,
    ]),
    `ingest_duration_seconds_sum{kind="usage"} 1.5`,
    'ingest_duration_seconds_bucket_other{le="0.001"} 5',
  ].join('\n');

describe('bench histogram helpers', () => {
  it('reads one label set of a histogram from the exposition, and the observations between two scrapes', () => {
    const before = histogramBuckets(exposition(() => 10), 'ingest_duration_seconds', ['kind="usage"']);
    expect(before).toEqual([
      { le: 0.001, count: 10 },
      { le: 0.0025, count: 10 },
      { le: 0.005, count: 10 },
      { le: Number.POSITIVE_INFINITY, count: 10 },
    ]);
    const counts: Record<string, number> = { '0.001': 60, '0.0025': 100, '0.005': 108, '+Inf': 110 };
    const delta = bucketsDelta(before, histogramBuckets(exposition((le) => counts[le]!), 'ingest_duration_seconds', ['kind="usage"']));
    expect(delta.map((b) => b.count)).toEqual([50, 90, 98, 100]);
    // Without a label filter every label set counts.
    expect(histogramBuckets(exposition(() => 10), 'ingest_duration_seconds')[0]).toEqual({ le: 0.001, count: 1010 });
    expect(histogramBuckets('', 'ingest_duration_seconds')).toEqual([]);
  });

  it('interpolates a quantile inside its bucket, as histogram_quantile does', () => {
    const b = [
      { le: 0.001, count: 50 },
      { le: 0.0025, count: 90 },
      { le: 0.005, count: 98 },
      { le: Number.POSITIVE_INFINITY, count: 100 },
    ];
    expect(bucketQuantile(b, 0.5)).toBeCloseTo(0.001, 9);
    expect(bucketQuantile(b, 0.25)).toBeCloseTo(0.0005, 9);
    expect(bucketQuantile(b, 0.7)).toBeCloseTo(0.00175, 9);
    // In +Inf: the highest finite bound is all it can say.
    expect(bucketQuantile(b, 0.99)).toBe(0.005);
    expect(bucketQuantile([{ le: 0.001, count: 0 }, { le: Number.POSITIVE_INFINITY, count: 0 }], 0.5)).toBeNull();
    expect(median([3, 1, 2])).toBe(2);
  });

  it('reads a metric without labels, and only that one', () => {
    const text = 'nodejs_eventloop_lag_p99_seconds 0.0123\nnodejs_eventloop_lag_p99_seconds_other 9\nnodejs_eventloop_lag_max_seconds{x="y"} 7';
    expect(gaugeValue(text, 'nodejs_eventloop_lag_p99_seconds')).toBe(0.0123);
    expect(gaugeValue(text, 'nodejs_eventloop_lag_max_seconds')).toBeNull();
  });
});

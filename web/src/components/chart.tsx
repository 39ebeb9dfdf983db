/**
 * A time-series chart (uPlot on a canvas): cheap to redraw many times a second, so live data can
 * be fed straight in. Times are epoch ms; the chart is as wide as its container.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartSeries {
  label: string;
  color: string;
  values: Array<number | null>;
  /** Draw on the right-hand axis (another unit, e.g. milliseconds). */
  right?: boolean;
}

export function TimeChart(props: { times: number[]; series: ChartSeries[]; height?: number; testId?: string; unit?: string; rightUnit?: string }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = props.series.map((s) => `${s.label}:${s.right ? 'r' : 'l'}`).join('|');

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const hasRight = props.series.some((s) => s.right);
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: props.height ?? 220,
      cursor: { drag: { x: false, y: false } },
      legend: { live: false },
      // One reading would otherwise stretch the time axis over years: keep at least a minute.
      scales: { x: { time: true, range: (_u, min, max) => (max - min < 60 ? [max - 60, max] : [min, max]) } },
      axes: [
        { stroke: '#8a94a6', grid: { stroke: '#e7eaf0' } },
        { stroke: '#8a94a6', grid: { stroke: '#e7eaf0' }, label: props.unit ?? '', size: 56 },
        ...(hasRight ? [{ side: 1 as const, scale: 'right', stroke: '#8a94a6', grid: { show: false }, label: props.rightUnit ?? '', size: 56 }] : []),
      ],
      series: [
        {},
        ...props.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          // Points only where a line cannot show the data (one or two readings).
          points: { show: (u: uPlot, si: number) => (u.data[si] ?? []).filter((v) => v !== null && v !== undefined).length <= 2, size: 6 },
          ...(s.right ? { scale: 'right' } : {}),
        })),
      ],
    };
    const u = new uPlot(opts, [props.times.map((t) => t / 1000), ...props.series.map((s) => s.values)], el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: props.height ?? 220 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Rebuilt only when the set of series changes; data changes go through setData below.
  }, [shape, props.height]);

  useEffect(() => {
    plot.current?.setData([props.times.map((t) => t / 1000), ...props.series.map((s) => s.values)]);
  }, [props.times, props.series]);

  return <div class="chart" ref={host} data-testid={props.testId} />;
}

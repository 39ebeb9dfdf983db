/**
 * `bench --only durability`: what `--durability power` costs against the default `process`, in
 * one run: the embedded control plane at one offered load (bench (b)'s world, warm-up and step),
 * started afresh for each round, the two settings alternating so that a drift of the machine's
 * speed shows in both. Reported per round and as medians: decision p50/p99 at the tower, the
 * tower's PUBACK (accept) p50/p99 and the control plane's CPU per event, and the ratios of the
 * medians (power / process).
 */
import type { Durability } from '../../shared/config.js';
import { benchPipeline, type StepOptions } from './pipeline-bench.js';
import { median } from './stats.js';

export interface DurabilityRound {
  durability: Durability;
  achieved_eps: number;
  p50_ms: number;
  p99_ms: number;
  accept_p50_ms: number | null;
  accept_p99_ms: number | null;
  us_per_event: number | null;
  sustained: boolean;
}

export interface DurabilityMedians {
  p50_ms: number;
  p99_ms: number;
  accept_p50_ms: number | null;
  us_per_event: number | null;
}

export interface DurabilityBenchResult {
  rate_eps: number;
  rounds: DurabilityRound[];
  process: DurabilityMedians;
  power: DurabilityMedians;
  /** power / process of the medians. */
  ratio: { p50: number; p99: number; accept_p50: number | null; us_per_event: number | null };
}

function medians(rounds: DurabilityRound[]): DurabilityMedians {
  const of = (pick: (r: DurabilityRound) => number | null): number | null => {
    const xs = rounds.map(pick).filter((x): x is number => x !== null);
    return xs.length > 0 ? median(xs) : null;
  };
  return { p50_ms: of((r) => r.p50_ms)!, p99_ms: of((r) => r.p99_ms)!, accept_p50_ms: of((r) => r.accept_p50_ms), us_per_event: of((r) => r.us_per_event) };
}

const ratioOf = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? a / b : null);

export async function benchDurability(opts: Omit<StepOptions, 'steps'> & { rateEps: number; pairs: number }): Promise<DurabilityBenchResult> {
  const rounds: DurabilityRound[] = [];
  for (let i = 0; i < opts.pairs; i++) {
    // Alternating, and which one goes first alternates too: neither always runs on a cold machine.
    const order: Durability[] = i % 2 === 0 ? ['process', 'power'] : ['power', 'process'];
    for (const durability of order) {
      const result = await benchPipeline({ ...opts, label: `durability ${durability}`, steps: [opts.rateEps], relaySeconds: 0, controlPlaneArgs: ['--durability', durability] });
      const step = result.steps[0];
      if (!step) throw new Error(`durability ${durability}: the step did not run`);
      rounds.push({
        durability,
        achieved_eps: step.achieved_eps,
        p50_ms: step.p50_ms,
        p99_ms: step.p99_ms,
        accept_p50_ms: step.accept_ms?.p50 ?? null,
        accept_p99_ms: step.accept_ms?.p99 ?? null,
        us_per_event: step.server_cpu?.us_per_event ?? null,
        sustained: step.sustained,
      });
    }
  }
  const unsynced = medians(rounds.filter((r) => r.durability === 'process'));
  const synced = medians(rounds.filter((r) => r.durability === 'power'));
  return {
    rate_eps: opts.rateEps,
    rounds,
    process: unsynced,
    power: synced,
    ratio: {
      p50: synced.p50_ms / unsynced.p50_ms,
      p99: synced.p99_ms / unsynced.p99_ms,
      accept_p50: ratioOf(synced.accept_p50_ms, unsynced.accept_p50_ms),
      us_per_event: ratioOf(synced.us_per_event, unsynced.us_per_event),
    },
  };
}

export function printDurability(r: DurabilityBenchResult, log: (s: string) => void, fmt: (n: number, d?: number) => string): void {
  const opt = (n: number | null, d: number): string => (n === null ? '-' : fmt(n, d));
  log(`  (m) --durability power vs process, ${fmt(r.rate_eps)} events/s, ${r.rounds.length / 2} alternating pairs (a fresh control plane each round)`);
  log('      durability   achieved ev/s   p50 ms   p99 ms   PUBACK p50/p99 ms   CP µs/event');
  for (const x of r.rounds) {
    log(`      ${x.durability.padEnd(10)} ${fmt(x.achieved_eps).padStart(15)} ${fmt(x.p50_ms, 2).padStart(8)} ${fmt(x.p99_ms, 2).padStart(8)} ${`${opt(x.accept_p50_ms, 2)} / ${opt(x.accept_p99_ms, 2)}`.padStart(19)} ${opt(x.us_per_event, 1).padStart(13)}${x.sustained ? '' : '  (not sustained)'}`);
  }
  const m = (label: string, x: DurabilityMedians) =>
    log(`      median ${label.padEnd(8)}  p50 ${fmt(x.p50_ms, 2)} ms   p99 ${fmt(x.p99_ms, 2)} ms   PUBACK p50 ${opt(x.accept_p50_ms, 2)} ms   ${opt(x.us_per_event, 1)} µs/event`);
  m('process', r.process);
  m('power', r.power);
  log(`      power / process: p50 ${fmt(r.ratio.p50, 2)}×   p99 ${fmt(r.ratio.p99, 2)}×   PUBACK p50 ${opt(r.ratio.accept_p50, 2)}×   CPU per event ${opt(r.ratio.us_per_event, 2)}×`);
}

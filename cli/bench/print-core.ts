/**
 * The results table of the bench parts (c) policy, (d) distributed and (e) what-if, as
 * `edgeplane bench` prints them after the run.
 */
import type { DistributedBenchResult } from './distributed-bench.js';
import type { PolicyBenchResult } from './policy-bench.js';
import type { WhatIfBenchResult } from './whatif-bench.js';

type Log = (s: string) => void;
type Fmt = (n: number, d?: number) => string;

export interface PolicyPartResult {
  rules_10: PolicyBenchResult;
  rules_100k: PolicyBenchResult;
  ratio_100k_to_10: number;
  /** The paired ratio of each alternating round (benchRuleCounts). */
  ratio_rounds: number[];
  worst_case_100k: PolicyBenchResult;
  cedar_shapes: PolicyBenchResult[];
}

export function printPolicy(policy: PolicyPartResult, log: Log, fmt: Fmt): void {
  const line = (label: string, r: PolicyBenchResult) =>
    log(`      ${label.padEnd(44)} ${fmt(r.decisions_per_s).padStart(12)} decisions/s/core (${fmt(r.ns_per_decision, 0)} ns)   with wire Decision ${fmt(r.evaluations_per_s).padStart(11)}/s`);
  log(`  (c) policy evaluation, one core                    target ≥ 5,000,000 decisions/s/core, 100k within 1.2× of 10 rules`);
  const rounds = policy.ratio_rounds.length;
  line(`realistic tenant, 10 rules (median of ${rounds})`, policy.rules_10);
  line(`realistic tenant, 100,000 rules (median of ${rounds}; compile ${fmt(policy.rules_100k.compile_ms, 1)} ms)`, policy.rules_100k);
  log(`      ratio 100k / 10 rules, median of ${rounds} alternating rounds ${fmt(policy.ratio_100k_to_10, 3).padStart(8)}   (rounds ${policy.ratio_rounds.map((x) => fmt(x, 3)).join(', ')})`);
  line('worst case: 100,000 rules, every user a random role combination', policy.worst_case_100k);
  for (const r of policy.cedar_shapes) line(`Cedar-paper shape: ${r.name} (${fmt(r.rules)} rules)`, r);
}

export function printDistributed(distributed: DistributedBenchResult, log: Log, fmt: Fmt): void {
  type R = typeof distributed.embedded;
  const loads = [...new Set([distributed.embedded, distributed.distributed_1_worker, distributed.distributed_2_workers].flatMap((r) => r.steps.map((x) => x.offered_eps)))].sort((a, b) => a - b);
  const cell = (r: R, load: number) => {
    const x = r.steps.find((y) => y.offered_eps === load);
    return x ? `${fmt(x.p50_ms, 1)}/${fmt(x.p99_ms, 1)}${x.undecided > 0 || x.achieved_eps < load * 0.95 ? '!' : ''}`.padStart(14) : '-'.padStart(14);
  };
  log('  (d) p50/p99 ms at the same offered loads (! = load not carried)');
  log(`      offered ev/s       embedded   1 broker+1 wkr  1 broker+2 wkr`);
  for (const load of loads) log(`      ${fmt(load).padStart(12)} ${cell(distributed.embedded, load)} ${cell(distributed.distributed_1_worker, load)} ${cell(distributed.distributed_2_workers, load)}`);
  const row = (name: string, r: R) =>
    log(`      ${name.padEnd(34)} carried ${fmt(r.max_carried_eps).padStart(8)} ev/s   sustained (p99 ≤ ${r.p99_limit_ms} ms) ${fmt(r.max_sustained_eps).padStart(8)} ev/s`);
  row('embedded (one process)', distributed.embedded);
  row('distributed, 1 broker + 1 worker', distributed.distributed_1_worker);
  row('distributed, 1 broker + 2 workers', distributed.distributed_2_workers);
  log(`      scaling 2 workers / 1 worker (carried)         ${fmt(distributed.scaling_2_over_1, 2).padStart(6)}`);
  log(`      distributed 1 worker / embedded (carried)      ${fmt(distributed.distributed_over_embedded, 2).padStart(6)}`);
}

export function printWhatIf(whatif: WhatIfBenchResult, log: Log, fmt: Fmt): void {
  const largest = whatif.windows[whatif.windows.length - 1]!;
  log(`  (e) what-if replay, ${fmt(whatif.events)} events, ${fmt(whatif.rules)} rules   target ≥ 1,000,000 events/s evaluated on one core, memory bounded`);
  log('      window     events      replayed/s    evaluated/s/core   peak RSS');
  for (const w of whatif.windows) log(`      ${fmt(w.fraction * 100, 1).padStart(5)} %  ${fmt(w.evaluated).padStart(10)}  ${fmt(w.replayed_per_s).padStart(12)}  ${fmt(w.evaluated_per_s).padStart(16)}   ${fmt(w.peak_rss_mb)} MB`);
  const w = whatif.worst_case;
  log(`      worst case (+ default effect changed)   ${fmt(w.replayed_per_s).padStart(10)} replayed/s ${fmt(w.evaluated_per_s).padStart(12)} evaluated/s/core   ${fmt(w.peak_rss_mb)} MB`);
  const c = whatif.heap_capped;
  log(`      100 % with the heap capped at ${c.heap_cap_mb} MB     ${fmt(c.replayed_per_s).padStart(10)} replayed/s ${fmt(c.evaluated_per_s).padStart(12)} evaluated/s/core   ${fmt(c.peak_rss_mb)} MB (completed)`);
  log(`      peak RSS largest / smallest window      ${fmt(whatif.rss_ratio_largest_to_smallest, 2).padStart(12)}   (${fmt(largest.evaluated)} events in ${fmt(largest.replay_ms / 1000, 2)} s)`);
  const h = whatif.history;
  log(`      version history: ${fmt(h.versions)} versions, ${fmt(h.entries)} entries, ${fmt(h.bytes_per_version)} B/version (a snapshot per version: ~${fmt(h.snapshot_per_version_bytes_estimate)} B/version)`);
}

/**
 * `edgeplane bench` (npm run bench): throughput and latency figures measured in one run on this
 * machine, each set against a baseline from the same run. Prints a table; --report writes JSON.
 */
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { benchDistributed } from '../bench/distributed-bench.js';
import { benchPipeline } from '../bench/pipeline-bench.js';
import { benchCedarShapes, benchPolicy, REALISTIC_WORST, type PolicyBenchResult } from '../bench/policy-bench.js';
import { benchRelay } from '../bench/relay-bench.js';
import { benchWhatIf } from '../bench/whatif-bench.js';
import { benchBundles } from '../bench/bundle-bench.js';
import { numberOption, optionsHelp, parseCommandArgs, type CommandOption } from '../args.js';

const options: Record<string, CommandOption> = {
  report: { type: 'string', describe: 'Write the JSON results to this file' },
  'step-seconds': { type: 'string', describe: 'Seconds per pipeline load step', default: '5' },
  'warmup-seconds': { type: 'string', describe: 'Unreported warm-up before the pipeline steps', default: '4' },
  'relay-seconds': { type: 'string', describe: 'Seconds of raw relay measurement', default: '5' },
  steps: { type: 'string', describe: 'Comma-separated offered loads (events/s) for the pipeline', default: '2000,5000,10000,15000,20000,30000,40000,60000,80000' },
  'p99-limit-ms': { type: 'string', describe: 'Stop stepping once p99 decision latency passes this', default: '50' },
  'distributed-steps': { type: 'string', describe: 'Offered loads (events/s) for the embedded-vs-distributed comparison', default: '500,1000,2000,4000,8000,12000,16000,24000' },
  only: { type: 'string', describe: 'Run only some parts: comma-separated of relay,pipeline,policy,distributed,whatif,bundles' },
  'whatif-events': { type: 'string', describe: 'Recorded usage events the what-if replay part replays', default: '1000000' },
  'bundle-towers': { type: 'string', describe: 'Towers (agents) the bundle freshness part connects', default: '100' },
  'bundle-changes': { type: 'string', describe: 'Rule changes the bundle freshness part times', default: '20' },
  'bundle-sizes': { type: 'string', describe: 'Tenants the freshness part runs: small (1,000 devices, 100 rules), large (100,000, 10,000)', default: 'small,large' },
};

export const benchHelp = `Usage: edgeplane bench [--report <file>] [options]

Measures on this machine, in one run:
  (a) relay     raw Aedes relay of batched usage payloads, no auth or policy (the ceiling)
  (b) pipeline  the full embedded control plane at increasing offered loads until p99 decision
                latency passes the limit; max sustained events/s and its ratio to (a)
  (c) policy    policy evaluation alone, decisions/s on one core with 10 and 100,000 rules, and on
                the shapes of the Cedar paper's three sample applications
  (d) distributed  the same offered loads through the embedded control plane and the distributed
                topology on this host (redis-server, api, 1 broker, then 1 and 2 workers): max
                sustained events/s and p50/p99 each, the scaling 2 workers / 1 worker
  (e) whatif    what-if replay of a draft over 1,000,000 recorded events in SQLite: events/s
                replayed and evaluated on one core, peak RSS for windows of 0.1/10/30/100 %, a
                worst case, and the whole window again with the JavaScript heap capped
  (f) bundles   edge autonomy: the policy bundle and device directory of a tenant with 100,000
                devices and 10,000 rules (bytes, parts, against the schema 1 bundle), the journal's
                bytes per event and a week at 1,000 events/s, and the time from a rule change in
                the API to the new version applied at every one of 100 connected towers

Options:
${optionsHelp(options)}
  -h, --help                   Show this help
`;

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

export async function benchCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, options, false);
  if (values.help) {
    process.stdout.write(benchHelp);
    return 0;
  }
  const only = typeof values.only === 'string' ? new Set(values.only.split(',')) : null;
  const want = (part: string) => !only || only.has(part);
  const log = (s: string) => process.stdout.write(s + '\n');
  const machine = { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', node: process.version };
  log(`EdgePlane bench — ${machine.cpus} cores (${machine.cpu_model}), Node ${machine.node}`);

  const results: Record<string, unknown> = { machine, started_at: new Date().toISOString() };

  let relay = null;
  if (want('relay')) {
    log('(a) raw relay …');
    relay = await benchRelay({ towers: 20, batchEvents: 100, seconds: numberOption(values, 'relay-seconds') ?? 5, window: 16 });
    results.relay = relay;
    log(`  relay ${fmt(relay.events_per_s)} events/s (${relay.towers} publishers, ${relay.batch_events}-event batches, QoS 1)`);
  }

  let pipeline = null;
  if (want('pipeline')) {
    log('(b) full pipeline …');
    const steps = String(values.steps).split(',').map((s) => Number(s.trim())).filter((n) => n > 0);
    pipeline = await benchPipeline({ steps, stepSeconds: numberOption(values, 'step-seconds') ?? 5, warmupSeconds: numberOption(values, 'warmup-seconds') ?? 4, p99LimitMs: numberOption(values, 'p99-limit-ms') ?? 50, log });
    results.pipeline = { ...pipeline, ratio_to_relay: relay ? pipeline.max_sustained_eps / relay.events_per_s : null };
  }

  let policy = null;
  if (want('policy')) {
    log('(c) policy evaluation …');
    const small = benchPolicy(10);
    const large = benchPolicy(100_000);
    policy = {
      rules_10: small,
      rules_100k: large,
      ratio_100k_to_10: large.decisions_per_s / small.decisions_per_s,
      worst_case_100k: benchPolicy(100_000, 1, REALISTIC_WORST),
      cedar_shapes: benchCedarShapes(),
    };
    results.policy = policy;
  }

  let distributed = null;
  if (want('distributed')) {
    log('(d) embedded vs distributed …');
    const steps = String(values['distributed-steps']).split(',').map((x) => Number(x.trim())).filter((n) => n > 0);
    distributed = await benchDistributed({ steps, stepSeconds: numberOption(values, 'step-seconds') ?? 5, warmupSeconds: numberOption(values, 'warmup-seconds') ?? 4, p99LimitMs: numberOption(values, 'p99-limit-ms') ?? 50, log });
    results.distributed = distributed;
  }

  // (e) what-if replay: its own part, printed with the results below.
  let whatif = null;
  if (want('whatif')) {
    log('(e) what-if replay …');
    whatif = await benchWhatIf({ events: numberOption(values, 'whatif-events') ?? 1_000_000, fractions: [0.001, 0.1, 0.3, 1], log });
    results.whatif = whatif;
  }

  // (f) edge bundles and the journal.
  let bundles = null;
  if (want('bundles')) {
    log('(f) edge bundles and journal …');
    const sizes = String(values['bundle-sizes']).split(',').map((x) => x.trim()).filter((x): x is 'small' | 'large' => x === 'small' || x === 'large');
    bundles = await benchBundles({ towers: numberOption(values, 'bundle-towers') ?? 100, changes: numberOption(values, 'bundle-changes') ?? 20, sizes, log });
    results.bundles = bundles;
  }

  log('');
  log('Results');
  log('  measure                                   value');
  if (relay) log(`  (a) raw relay ceiling                     ${fmt(relay.events_per_s).padStart(12)} events/s`);
  if (pipeline) {
    log(`  (b) pipeline max sustained (p99 ≤ ${pipeline.p99_limit_ms} ms)   ${fmt(pipeline.max_sustained_eps).padStart(12)} events/s   p99 ${pipeline.p99_at_max_sustained_ms ?? '-'} ms`);
    if (relay) log(`      ratio pipeline / raw relay            ${fmt((pipeline.max_sustained_eps / relay.events_per_s) * 100, 1).padStart(11)} %`);
    log('      offered      achieved      p50 ms    p99 ms    max ms   sustained');
    for (const s of pipeline.steps) {
      log(`      ${fmt(s.offered_eps).padStart(7)}  ${fmt(s.achieved_eps).padStart(12)}  ${fmt(s.p50_ms, 2).padStart(10)}  ${fmt(s.p99_ms, 2).padStart(8)}  ${fmt(s.max_ms, 2).padStart(8)}   ${s.sustained ? 'yes' : 'no'}`);
    }
  }
  if (policy) {
    const line = (label: string, r: PolicyBenchResult) =>
      log(`      ${label.padEnd(44)} ${fmt(r.decisions_per_s).padStart(12)} decisions/s/core (${fmt(r.ns_per_decision, 0)} ns)   with wire Decision ${fmt(r.evaluations_per_s).padStart(11)}/s`);
    log(`  (c) policy evaluation, one core                    target ≥ 5,000,000 decisions/s/core, 100k within 1.2× of 10 rules`);
    line('realistic tenant, 10 rules', policy.rules_10);
    line(`realistic tenant, 100,000 rules (compile ${fmt(policy.rules_100k.compile_ms, 1)} ms)`, policy.rules_100k);
    log(`      ratio 100k / 10 rules                        ${fmt(policy.ratio_100k_to_10, 3).padStart(12)}`);
    line('worst case: 100,000 rules, every user a random role combination', policy.worst_case_100k);
    for (const r of policy.cedar_shapes) line(`Cedar-paper shape: ${r.name} (${fmt(r.rules)} rules)`, r);
  }
  if (distributed) {
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
  if (whatif) {
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
  if (bundles) {
    const z = bundles.size;
    const kb = (n: number) => `${fmt(n / 1024, 0)} KiB`;
    log(`  (f) edge bundles, tenant of ${fmt(z.devices)} devices, ${fmt(z.rules)} rules (${fmt(z.grants)} grants, ${z.profiles} profiles), built in ${fmt(z.build_ms)} ms`);
    log(`      policy bundle (each serving tower)       ${kb(z.bundle_bytes).padStart(12)} in ${z.bundle_parts} parts`);
    log(`      directory slice (every tower)            ${kb(z.directory_bytes).padStart(12)} in ${z.directory_parts} parts, ${z.directory_bytes_per_device} B/device`);
    log(`      schema 1 bundle it replaces               ${kb(z.legacy_bundle_bytes).padStart(12)} in one message; largest message now ${kb(z.largest_message_bytes)}`);
    const j = bundles.journal;
    log(`      journal: ${j.bytes_per_event} B/event, ${fmt(j.appends_per_s)} appends/s on one core; a week at 1,000 events/s = ${j.week_at_1000_eps_gb} GB`);
    log('      freshness (rule change in the API → new version applied)   target p99 < 1,000 ms for 100 towers');
    for (const f of bundles.freshness) {
      log(`      ${f.label.padEnd(6)} ${fmt(f.devices).padStart(7)} devices ${fmt(f.rules).padStart(6)} rules, ${f.towers} towers, ${f.changes} changes: per tower p50 ${fmt(f.per_tower_ms.p50, 1)} / p99 ${fmt(f.per_tower_ms.p99, 1)} ms; every tower p50 ${fmt(f.all_towers_ms.p50, 1)} / p99 ${fmt(f.all_towers_ms.p99, 1)} / max ${fmt(f.all_towers_ms.max, 1)} ms`);
    }
  }
  if (typeof values.report === 'string') {
    await writeFile(values.report, JSON.stringify(results, null, 2) + '\n');
    log(`\nJSON written to ${values.report}`);
  }
  return 0;
}

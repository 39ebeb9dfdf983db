/**
 * `edgeplane bench` (npm run bench): throughput, latency and memory figures measured in one run on
 * this machine, each printed next to its target and, where there is one, set against a baseline
 * from the same run. Prints a table; --report writes JSON. Every part is bounded and stops by
 * itself; everything listens on loopback only.
 */
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { benchAgent, printAgent, type AgentBenchResult } from '../bench/agent-bench.js';
import { benchApi, printApi, type ApiBenchResult } from '../bench/api-bench.js';
import { benchBundles, printBundles, type BundleBenchResult } from '../bench/bundle-bench.js';
import { benchRetained, printRetained, type RetainedBenchResult } from '../bench/retained-bench.js';
import { benchDistributed, type DistributedBenchResult } from '../bench/distributed-bench.js';
import { benchDurability, printDurability, type DurabilityBenchResult } from '../bench/durability-bench.js';
import { benchMemory, printMemory, type MemoryBenchResult } from '../bench/memory-bench.js';
import { benchPipeline, type PipelineBenchResult } from '../bench/pipeline-bench.js';
import { benchCedarShapes, benchPolicy, benchRuleCounts, REALISTIC_WORST } from '../bench/policy-bench.js';
import { printDistributed, printPolicy, printWhatIf, type PolicyPartResult } from '../bench/print-core.js';
import { benchRelay, type RelayResult } from '../bench/relay-bench.js';
import { benchRemediation, printRemediation, type RemediationBenchResult } from '../bench/remediation-bench.js';
import { benchStartup, printStartup, type StartupBenchResult } from '../bench/startup-bench.js';
import { benchWhatIf, type WhatIfBenchResult } from '../bench/whatif-bench.js';
import { numberOption, optionsHelp, parseCommandArgs, UsageError, type CommandOption } from '../args.js';

export const BENCH_PARTS = ['relay', 'pipeline', 'policy', 'distributed', 'whatif', 'startup', 'agent', 'remediation', 'api', 'memory', 'bundles', 'retained', 'durability'] as const;
type Part = (typeof BENCH_PARTS)[number];

const options: Record<string, CommandOption> = {
  report: { type: 'string', describe: 'Write the JSON results to this file' },
  only: { type: 'string', describe: `Run only some parts, comma-separated: ${BENCH_PARTS.join(',')}` },
  'step-seconds': { type: 'string', describe: 'Seconds per pipeline load step', default: '5' },
  'warmup-seconds': { type: 'string', describe: 'Unreported warm-up before the pipeline steps', default: '4' },
  'relay-seconds': { type: 'string', describe: 'Seconds of relay measurement (fixed stream, and per pipeline step\'s stream; 0 skips the latter)', default: '5' },
  steps: { type: 'string', describe: 'Comma-separated offered loads (events/s) for the pipeline', default: '2000,5000,10000,15000,20000,30000,40000,60000,80000' },
  'p99-limit-ms': { type: 'string', describe: 'Stop stepping once p99 decision latency passes this', default: '50' },
  'distributed-steps': { type: 'string', describe: 'Offered loads (events/s) for the embedded-vs-distributed comparison', default: '500,1000,2000,4000,8000,12000,16000,24000' },
  'whatif-events': { type: 'string', describe: 'Recorded usage events the what-if replay part replays', default: '1000000' },
  'startup-rounds': { type: 'string', describe: 'Measured starts of each runtime (sources, compiled)', default: '3' },
  'agent-seconds': { type: 'string', describe: 'Seconds of agent load at --agent-eps', default: '10' },
  'agent-eps': { type: 'string', describe: 'Events/s fed to the agent bundle', default: '1000' },
  'remediation-seconds': { type: 'string', describe: 'Seconds of the remediation round-trip measurement', default: '20' },
  'remediation-eps': { type: 'string', describe: 'Offered events/s during the remediation measurement', default: '3000' },
  'violation-percent': { type: 'string', describe: 'Share of violations during the remediation measurement', default: '1' },
  'api-seconds': { type: 'string', describe: 'Seconds of autocannon load per endpoint', default: '5' },
  'api-connections': { type: 'string', describe: 'autocannon connections for the throughput figures', default: '10' },
  'usage-rows': { type: 'string', describe: 'Usage rows seeded into the store for the api part', default: '1000000' },
  'memory-towers': { type: 'string', describe: 'Idle tower counts for RSS per connection (empty skips)', default: '2000,5000' },
  'memory-minutes': { type: 'string', describe: 'Minutes of steady load for the RSS drift (0 skips)', default: '10' },
  'memory-load-eps': { type: 'string', describe: 'Load for the drift when the pipeline part did not run (else half its max sustained)', default: '10000' },
  'bundle-towers': { type: 'string', describe: 'Towers (agents) the bundle freshness part connects', default: '100' },
  'bundle-changes': { type: 'string', describe: 'Rule changes the bundle freshness part times', default: '20' },
  'bundle-sizes': { type: 'string', describe: 'Tenants the freshness part runs: small (1,000 devices, 100 rules), large (100,000, 10,000)', default: 'small,large' },
  'retained-towers': { type: 'string', describe: "Towers whose bundles (a head and 8 parts each) the retained lookup part stores", default: '5000' },
  'durability-eps': { type: 'string', describe: 'Offered load (events/s) of the durability comparison', default: '10000' },
  'durability-pairs': { type: 'string', describe: 'Alternating process/power rounds of the durability comparison', default: '3' },
};

export const benchHelp = `Usage: edgeplane bench [--report <file>] [--only <parts>] [options]

Measures on this machine, in one run (each part bounded; loopback only):
  (a) relay       raw Aedes relay of 100-event usage batches from 20 towers, QoS 1: messages/s, events/s
  (b) pipeline    the full embedded control plane at increasing offered loads until p99 decision
                  latency passes the limit; each step's own message stream (the batch sizes the
                  agents produced) then replayed through the raw relay: pipeline / relay per step
  (c) policy      policy evaluation alone, decisions/s on one core with 10 and 100,000 rules, and on
                  the shapes of the Cedar paper's three sample applications
  (d) distributed the same offered loads through the embedded control plane and the distributed
                  topology on this host (redis-server, api, 1 broker, then 1 and 2 workers)
  (e) whatif      what-if replay of a draft over 1,000,000 recorded events in SQLite
  (f) startup     edgeplane start from the TypeScript sources and from dist/: time to /readyz and to
                  a tower's first CONNACK (builds dist/ first when it is not current)
  (g) agent       the standalone agent bundle: size, RSS idle and at 1,000 events/s
  (h) remediation violation observed → command applied at the tower → ack in the cloud, p99 at
                  3,000 events/s with 1 % violations
  (i) api         authenticated list endpoints vs a Fastify hello world (autocannon), and p99 of
                  /app-usage and /dashboard/alerts with 1,000,000 usage rows in the store
  (j) memory      RSS per connected idle tower (2,000 and 5,000), and RSS drift over 10 minutes at
                  half the max sustained load
  (k) bundles     edge autonomy: the policy bundle and device directory of a tenant with 100,000
                  devices and 10,000 rules (bytes, parts, against the schema 1 bundle), the journal's
                  bytes per event and a week at 1,000 events/s, and the time from a rule change in
                  the API to the new version applied at every one of 100 connected towers
  (l) retained    distributed mode's Redis session store: one tower's SUBSCRIBE with 5,000 towers'
                  bundles retained, aedes-persistence-redis' scan vs our index, same data
  (m) durability  the embedded pipeline at one load with --durability power vs process (alternating
                  rounds): decision and PUBACK latency, CPU per event, and the ratios

Options:
${optionsHelp(options)}
  -h, --help                   Show this help
`;

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const list = (s: unknown) => String(s ?? '').split(',').map((x) => Number(x.trim())).filter((n) => n > 0);

interface Results {
  relay?: RelayResult & { batch_events: number };
  pipeline?: PipelineBenchResult;
  policy?: PolicyPartResult;
  distributed?: DistributedBenchResult;
  whatif?: WhatIfBenchResult;
  startup?: StartupBenchResult;
  agent?: AgentBenchResult;
  remediation?: RemediationBenchResult;
  api?: ApiBenchResult;
  memory?: MemoryBenchResult;
  bundles?: BundleBenchResult;
  retained?: RetainedBenchResult;
  durability?: DurabilityBenchResult;
}

export async function benchCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, options, false);
  if (values.help) {
    process.stdout.write(benchHelp);
    return 0;
  }
  const only = typeof values.only === 'string' ? new Set(values.only.split(',').map((s) => s.trim())) : null;
  for (const p of only ?? []) if (!(BENCH_PARTS as readonly string[]).includes(p)) throw new UsageError(`--only: unknown part "${p}" (parts: ${BENCH_PARTS.join(', ')})`);
  const want = (part: Part) => !only || only.has(part);
  const num = (name: string) => numberOption(values, name) ?? Number(options[name]!.default);
  const log = (s: string) => void process.stdout.write(s + '\n');
  const machine = { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', node: process.version };
  log(`EdgePlane bench — ${machine.cpus} cores (${machine.cpu_model}), Node ${machine.node}`);
  const r: Results = {};
  const stepOpts = { stepSeconds: num('step-seconds'), warmupSeconds: num('warmup-seconds'), p99LimitMs: num('p99-limit-ms'), log };

  if (want('relay')) {
    log('(a) raw relay …');
    r.relay = await benchRelay({ towers: 20, batchEvents: 100, seconds: num('relay-seconds'), warmupSeconds: 1, window: 16 });
    log(`  relay ${fmt(r.relay.events_per_s)} events/s in ${fmt(r.relay.msgs_per_s)} msg/s (${r.relay.towers} publishers, ${r.relay.batch_events}-event batches, QoS 1)`);
  }
  if (want('pipeline')) {
    log('(b) full pipeline, then the relay on each step\'s stream …');
    r.pipeline = await benchPipeline({ ...stepOpts, steps: list(values.steps), relaySeconds: num('relay-seconds') });
  }
  if (want('policy')) {
    log('(c) policy evaluation …');
    r.policy = { ...benchRuleCounts(), worst_case_100k: benchPolicy(100_000, 1, REALISTIC_WORST), cedar_shapes: benchCedarShapes() };
  }
  if (want('distributed')) {
    log('(d) embedded vs distributed …');
    r.distributed = await benchDistributed({ ...stepOpts, steps: list(values['distributed-steps']) });
  }
  if (want('whatif')) {
    log('(e) what-if replay …');
    r.whatif = await benchWhatIf({ events: num('whatif-events'), fractions: [0.001, 0.1, 0.3, 1], log });
  }
  if (want('startup')) {
    log('(f) start-up, sources vs compiled …');
    r.startup = await benchStartup({ rounds: Math.max(1, Math.round(num('startup-rounds'))), log });
  }
  if (want('agent')) {
    log('(g) agent bundle …');
    r.agent = await benchAgent({ idleSeconds: 5, loadSeconds: num('agent-seconds'), rateEps: num('agent-eps'), log });
  }
  if (want('remediation')) {
    log('(h) remediation round trip …');
    r.remediation = await benchRemediation({ rateEps: num('remediation-eps'), violationPercent: num('violation-percent'), seconds: num('remediation-seconds'), warmupSeconds: 5, log });
  }
  if (want('api')) {
    log('(i) API …');
    r.api = await benchApi({ rows: Math.round(num('usage-rows')), connections: Math.max(1, Math.round(num('api-connections'))), seconds: num('api-seconds'), log });
  }
  if (want('memory')) {
    log('(j) memory …');
    const half = r.pipeline && r.pipeline.max_sustained_eps > 0 ? Math.round(r.pipeline.max_sustained_eps / 2) : null;
    r.memory = await benchMemory({
      towers: list(values['memory-towers']),
      minutes: num('memory-minutes'),
      loadEps: half ?? num('memory-load-eps'),
      loadFrom: half ? 'half the max sustained of (b)' : '--memory-load-eps',
      log,
    });
  }

  if (want('bundles')) {
    log('(k) edge bundles and journal …');
    const sizes = String(values['bundle-sizes']).split(',').map((x) => x.trim()).filter((x): x is 'small' | 'large' => x === 'small' || x === 'large');
    r.bundles = await benchBundles({ towers: Math.round(num('bundle-towers')), changes: Math.round(num('bundle-changes')), sizes, log });
  }

  if (want('retained')) {
    log('(l) retained lookups, Redis sessions …');
    r.retained = await benchRetained({ towers: Math.round(num('retained-towers')), parts: 8, lookups: 100, log });
  }

  if (want('durability')) {
    log('(m) durability, power vs process …');
    r.durability = await benchDurability({ ...stepOpts, rateEps: Math.round(num('durability-eps')), pairs: Math.max(1, Math.round(num('durability-pairs'))) });
  }

  log('');
  log('Results');
  printResults(r, log);
  if (typeof values.report === 'string') {
    await writeFile(values.report, JSON.stringify({ machine, started_at: new Date().toISOString(), ...r }, null, 2) + '\n');
    log(`\nJSON written to ${values.report}`);
  }
  return 0;
}

function printResults(r: Results, log: (s: string) => void): void {
  if (r.relay) log(`  (a) raw relay, ${r.relay.towers} towers × ${r.relay.batch_events}-event batches, QoS 1   ${fmt(r.relay.events_per_s).padStart(10)} events/s   ${fmt(r.relay.msgs_per_s).padStart(8)} msg/s`);
  const p = r.pipeline;
  if (p) {
    log(`  (b) pipeline max sustained (p99 ≤ ${p.p99_limit_ms} ms)   ${fmt(p.max_sustained_eps).padStart(10)} events/s   p99 ${p.p99_at_max_sustained_ms ?? '-'} ms   target ≥ 50,000 events/s at p99 ≤ 10 ms`);
    if (p.ratio_to_relay_at_max_sustained != null) log(`      pipeline / relay on the same stream at max sustained   ${fmt(p.ratio_to_relay_at_max_sustained * 100, 1)} %   target ≥ 50 %`);
    log('      offered    achieved ev/s   msg/s  ev/msg   p50 ms   p99 ms   max ms  sustained  gen. delay p99/max ms  gen. µs/event (cores)  CP loop delay p99/max ms  CP µs/event (cores)  accept p50/p99 ms   relay ev/s   relay msg/s   pipeline/relay');
    for (const s of p.steps) {
      const relay = s.relay ? `${fmt(s.relay.events_per_s).padStart(12)} ${fmt(s.relay.msgs_per_s).padStart(13)} ${fmt((s.ratio_to_relay ?? 0) * 100, 1).padStart(14)} %` : '';
      log(
        `      ${fmt(s.offered_eps).padStart(7)} ${fmt(s.achieved_eps).padStart(15)} ${fmt(s.stream.msgs_per_s).padStart(7)} ${fmt(s.stream.mean_batch_events, 1).padStart(7)} ` +
          `${fmt(s.p50_ms, 2).padStart(8)} ${fmt(s.p99_ms, 2).padStart(8)} ${fmt(s.max_ms, 2).padStart(8)}  ${(s.sustained ? 'yes' : 'no').padStart(9)} ${`${fmt(s.generator_delay_ms.p99, 1)} / ${fmt(s.generator_delay_ms.max, 1)}`.padStart(21)} ${`${fmt(s.generator_cpu.us_per_event, 1)} (${fmt(s.generator_cpu.cores, 2)})`.padStart(21)} ${(s.server_delay_ms ? `${fmt(s.server_delay_ms.p99, 1)} / ${fmt(s.server_delay_ms.max, 1)}` : '-').padStart(24)} ${(s.server_cpu ? `${fmt(s.server_cpu.us_per_event, 1)} (${fmt(s.server_cpu.cores, 2)})` : '-').padStart(20)} ${(s.accept_ms ? `${fmt(s.accept_ms.p50, 2)} / ${fmt(s.accept_ms.p99, 2)}` : '-').padStart(17)} ${relay}`,
      );
    }
    const at10k = p.steps.find((s) => s.offered_eps === 10_000);
    if (at10k) log(`      at 10,000 events/s: p50 ${fmt(at10k.p50_ms, 2)} ms, p99 ${fmt(at10k.p99_ms, 2)} ms   target p50 ≤ 1 ms, p99 ≤ 5 ms`);
  }
  if (r.policy) printPolicy(r.policy, log, fmt);
  if (r.distributed) printDistributed(r.distributed, log, fmt);
  if (r.whatif) printWhatIf(r.whatif, log, fmt);
  if (r.startup) printStartup(r.startup, log, fmt);
  if (r.agent) printAgent(r.agent, log, fmt);
  if (r.remediation) printRemediation(r.remediation, log, fmt);
  if (r.api) printApi(r.api, log, fmt);
  if (r.memory) printMemory(r.memory, log, fmt);
  if (r.bundles) printBundles(r.bundles, log, fmt);
  if (r.retained) printRetained(r.retained, log, fmt);
  if (r.durability) printDurability(r.durability, log, fmt);
}

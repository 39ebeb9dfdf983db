/**
 * `edgeplane bench` (npm run bench): throughput and latency figures measured in one run on this
 * machine, each set against a baseline from the same run. Prints a table; --report writes JSON.
 */
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { benchPipeline } from '../bench/pipeline-bench.js';
import { benchPolicy } from '../bench/policy-bench.js';
import { benchRelay } from '../bench/relay-bench.js';
import { numberOption, optionsHelp, parseCommandArgs, type CommandOption } from '../args.js';

const options: Record<string, CommandOption> = {
  report: { type: 'string', describe: 'Write the JSON results to this file' },
  'step-seconds': { type: 'string', describe: 'Seconds per pipeline load step', default: '5' },
  'warmup-seconds': { type: 'string', describe: 'Unreported warm-up before the pipeline steps', default: '4' },
  'relay-seconds': { type: 'string', describe: 'Seconds of raw relay measurement', default: '5' },
  steps: { type: 'string', describe: 'Comma-separated offered loads (events/s) for the pipeline', default: '2000,5000,10000,15000,20000,30000,40000,60000,80000' },
  'p99-limit-ms': { type: 'string', describe: 'Stop stepping once p99 decision latency passes this', default: '50' },
  only: { type: 'string', describe: 'Run only some parts: comma-separated of relay,pipeline,policy' },
};

export const benchHelp = `Usage: edgeplane bench [--report <file>] [options]

Measures on this machine, in one run:
  (a) relay     raw Aedes relay of batched usage payloads, no auth or policy (the ceiling)
  (b) pipeline  the full embedded control plane at increasing offered loads until p99 decision
                latency passes the limit; max sustained events/s and its ratio to (a)
  (c) policy    policy evaluation alone, decisions/s on one core with 10 and 100,000 rules

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
    policy = { rules_10: small, rules_100k: large, ratio_100k_to_10: large.decisions_per_s / small.decisions_per_s };
    results.policy = policy;
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
    log(`  (c) policy, 10 rules                      ${fmt(policy.rules_10.decisions_per_s).padStart(12)} decisions/s/core`);
    log(`      policy, 100,000 rules                 ${fmt(policy.rules_100k.decisions_per_s).padStart(12)} decisions/s/core   (compile ${fmt(policy.rules_100k.compile_ms, 1)} ms)`);
    log(`      ratio 100k / 10 rules                 ${fmt(policy.ratio_100k_to_10, 3).padStart(12)}`);
  }
  if (typeof values.report === 'string') {
    await writeFile(values.report, JSON.stringify(results, null, 2) + '\n');
    log(`\nJSON written to ${values.report}`);
  }
  return 0;
}

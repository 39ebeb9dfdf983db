import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../shared/logger.js';
import { runFleet } from '../../simulator/fleet.js';
import { provisionWorld } from '../../simulator/provision.js';
import { formatReport, type FleetReport } from '../../simulator/report.js';
import { numberOption, optionsHelp, parseCommandArgs, UsageError, type CommandOption } from '../args.js';
import { scenarioFor } from '../scenario-duration.js';
import { checkSimulateFlags } from './simulate-flags.js';

const options: Record<string, CommandOption> = {
  scenario: { type: 'string', describe: 'Scenario file (.yaml, .yml or .json)' },
  api: { type: 'string', describe: 'Control plane API base URL', default: 'http://127.0.0.1:8080' },
  mqtt: { type: 'string', describe: 'Broker URL the towers connect to (mqtt:// or ws://); several mqtt(s):// comma-separated fail over', default: 'mqtt://127.0.0.1:1883' },
  'admin-email': { type: 'string', describe: 'Platform operator e-mail (env EDGEPLANE_ADMIN_EMAIL; default admin@edgeplane.local)' },
  'admin-password': { type: 'string', describe: 'Platform operator password (env EDGEPLANE_ADMIN_PASSWORD)' },
  duration: { type: 'string', describe: 'Override the scenario duration, seconds (outages are scaled to fit)' },
  rate: { type: 'string', describe: 'Override the scenario rate, events/s' },
  report: { type: 'string', describe: 'Write the JSON report to this file' },
  'state-dir': { type: 'string', describe: "The agents' state (journals of unsent events, blocks, acks); default: a temporary directory removed at the end" },
  'log-level': { type: 'string', describe: 'Agent log level', default: 'warn' },
};

export const simulateHelp = `Usage: edgeplane simulate --scenario <file> [options]

Provisions the scenario's tenants, catalogues, roles and policies through the API, its device
users, role assignments and devices through the bulk import (POST /onboarding/import, 1000 rows
per request), and its towers with fresh MQTT credentials, printing progress on stderr; then plays
one real MQTT edge agent per tower against the broker, printing every second the events sent and
decided, the p99 latency of that second and any tower offline, and reports throughput, decision
latency, undecided and duplicated events, injected violations caught, remediation commands,
and for outages the decisions towers made locally, reconciled with the cloud, disagreements and
events lost. Exits 1 if any event was left without a decision, rejected, decided twice or lost,
any injected violation was missed or any expected remediation was not applied at a tower; exits 2,
before anything is provisioned, for a bad flag or scenario file (malformed, unknown or misspelt
keys, values out of range, over 1 MiB). SIGINT or SIGTERM ends the playback early: the events
already sent are drained and the report covers what was played; while the towers are still
connecting it ends the run at once (exit 1, nothing played).

Options:
${optionsHelp(options)}
  -h, --help                   Show this help
`;

/** A --duration or --rate override: 0 would silently mean "the scenario's own", so it is refused. */
function positiveOption(values: Record<string, unknown>, name: string): number | undefined {
  const n = numberOption(values, name);
  if (n === 0) throw new UsageError(`--${name} must be greater than 0`);
  return n;
}

export async function simulateCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, options, false);
  if (values.help) {
    process.stdout.write(simulateHelp);
    return 0;
  }
  if (typeof values.scenario !== 'string') throw new UsageError('--scenario is required');
  const adminEmail = (values['admin-email'] as string | undefined) ?? process.env.EDGEPLANE_ADMIN_EMAIL ?? 'admin@edgeplane.local';
  const adminPassword = (values['admin-password'] as string | undefined) ?? process.env.EDGEPLANE_ADMIN_PASSWORD;
  if (!adminPassword) throw new UsageError('--admin-password (or EDGEPLANE_ADMIN_PASSWORD) is required');

  const logLevel = await checkSimulateFlags({
    api: values.api as string,
    mqtt: values.mqtt as string,
    logLevel: values['log-level'] as string,
    report: values.report as string | undefined,
    stateDir: values['state-dir'] as string | undefined,
  });
  const duration = positiveOption(values, 'duration');
  const rate = positiveOption(values, 'rate');
  const scenario = await scenarioFor(values.scenario as string, duration, rate);
  const logger = createLogger(logLevel);
  const { world } = await provisionWorld(scenario, {
    apiUrl: values.api as string,
    adminEmail,
    adminPassword,
    onStep: (m) => process.stderr.write(`provision: ${m}\n`),
  });
  const given = values['state-dir'] as string | undefined;
  const stateDir = given ?? (await mkdtemp(join(tmpdir(), 'edgeplane-simulate-')));
  // Interrupted, the fleet stops playing, drains and reports instead of dying with its agents'
  // connections and the temporary state directory left behind. A second SIGINT kills at once.
  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`${signal}: stopping the playback, draining and reporting\n`);
    interrupt.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.stderr.write(`fleet: connecting ${world.towers.length} towers to ${values.mqtt as string}\n`);
  let report: FleetReport;
  try {
    report = await runFleet(world, {
      mqttUrl: values.mqtt as string,
      logger,
      stateDir,
      signal: interrupt.signal,
      onProgress: (p) =>
        process.stderr.write(
          `t=${p.elapsed_s.toFixed(0)}s sent=${p.sent} decided=${p.decided} p99_last_interval=${p.p99_ms}ms` +
            `${p.offline_towers.length > 0 || p.outages_started.length > 0 ? ` OUTAGE=${[...new Set([...p.outages_started, ...p.offline_towers])].join(',')}` : ''}\n`,
        ),
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (given === undefined) await rm(stateDir, { recursive: true, force: true });
  }
  process.stdout.write(formatReport(report) + '\n');
  if (typeof values.report === 'string') await writeFile(values.report, JSON.stringify(report, null, 2) + '\n');
  return report.passed ? 0 : 1;
}

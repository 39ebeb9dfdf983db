/**
 * `edgeplane demo`: the whole loop on one machine. Starts the embedded control plane on a fresh
 * data dir, provisions the demo enterprises through the API, plays the demo fleet with a live
 * summary, prints the final report, then keeps the API up for exploring until Ctrl-C — or, with
 * --duration/--report, exits with the report's verdict (non-interactive, for CI).
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomSecret } from '../../shared/auth/secrets.js';
import { configHelp, loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/logger.js';
import { ApiClient } from '../../simulator/api-client.js';
import { runFleet } from '../../simulator/fleet.js';
import { provisionWorld } from '../../simulator/provision.js';
import { formatReport, type FleetReport } from '../../simulator/report.js';
import { loadScenario } from '../../simulator/scenario.js';
import { numberOption, optionsHelp, parseCommandArgs, type CommandOption } from '../args.js';
import { startEmbedded } from '../embedded.js';
import { withDuration } from '../scenario-duration.js';
import { onShutdownSignal } from '../shutdown.js';

const DEMO_SCENARIO = fileURLToPath(new URL('../../simulator/scenarios/demo.yaml', import.meta.url));

const options: Record<string, CommandOption> = {
  duration: { type: 'string', describe: 'Seconds of fleet playback; with it the demo exits after the report' },
  report: { type: 'string', describe: 'Write the JSON report here; with it the demo exits after the report' },
  scenario: { type: 'string', describe: 'Scenario file to play', default: 'simulator/scenarios/demo.yaml' },
  rate: { type: 'string', describe: 'Override the scenario rate, events/s' },
};

export const demoHelp = `Usage: edgeplane demo [--duration <s>] [--report <file>] [options]

Starts the embedded control plane (broker, API, policy workers, SQLite) on a fresh data
directory, provisions the demo enterprises through the API, plays a fleet of simulated towers
with a live summary and prints the final report. Without --duration/--report the API stays up
(OpenAPI docs at /docs) until Ctrl-C; with either, the demo exits 0 if the run passed, else 1.

Demo options:
${optionsHelp(options)}

Control plane options (as for 'edgeplane start'; the data dir defaults to a new temp dir):
${configHelp()}
  -h, --help                   Show this help
`;

export async function demoCommand(argv: string[]): Promise<number> {
  const { values, config: flags } = parseCommandArgs(argv, options, true);
  if (values.help) {
    process.stdout.write(demoHelp);
    return 0;
  }
  const interactive = values.duration === undefined && values.report === undefined;
  const adminPassword = (flags.admin_password as string | undefined) ?? process.env.EDGEPLANE_ADMIN_PASSWORD ?? randomSecret(12);
  const config = loadConfig({
    log_level: 'warn',
    // The demo provisions ~600 records through the API in seconds; the production default
    // (100 requests/min per principal) would stretch that to minutes. Flags still override.
    rate_limit_per_min: 100_000,
    data_dir: process.env.EDGEPLANE_DATA_DIR ? undefined : await mkdtemp(join(tmpdir(), 'edgeplane-demo-')),
    ...flags,
    admin_password: adminPassword,
  });
  const logger = createLogger(config.log_level);
  const scenarioFile = values.scenario === options.scenario!.default ? DEMO_SCENARIO : (values.scenario as string);
  const scenario = withDuration(await loadScenario(scenarioFile), numberOption(values, 'duration'), numberOption(values, 'rate'));

  const out = (s: string) => process.stdout.write(s + '\n');
  const cp = await startEmbedded(config, { logger });
  onShutdownSignal(cp.stop, logger, config.shutdown_timeout_ms);
  out(`EdgePlane demo — control plane up: API ${cp.httpUrl} (docs ${cp.httpUrl}/docs), MQTT ${cp.mqttUrl}, data ${cp.paths.root}`);

  let report: FleetReport;
  try {
    const { world, owners } = await provisionWorld(scenario, {
      apiUrl: cp.httpUrl,
      adminEmail: config.admin_email,
      adminPassword,
      onStep: (m) => out(`  provisioning ${m}`),
    });
    out(`Console: ${cp.httpUrl}/ (live while the fleet plays) — operator ${config.admin_email} / ${adminPassword}; ${owners.map((o) => `${o.tenant} ${o.email} / ${o.password}`).join('; ')}`);
    const devices = world.tenants.reduce((n, t) => n + t.device_ids.length, 0);
    out(`Playing "${scenario.name}": ${world.towers.length} towers, ${world.tenants.length} enterprises, ${devices} devices, ${scenario.rate_eps} events/s for ${scenario.duration_s} s, ${scenario.violations.count} injected violations, ${scenario.outages.length} tower outage(s)`);
    report = await runFleet(world, {
      mqttUrl: cp.mqttUrl,
      logger,
      onProgress: (p) =>
        out(
          `  t=${p.elapsed_s.toFixed(0).padStart(3)}s  sent ${String(p.sent).padStart(7)}  decided ${String(p.decided).padStart(7)}  p99 ${p.p99_ms} ms  denied ${cp.counters.get('decisions_sent_total', { effect: 'deny' })}`,
        ),
    });
    out('');
    out(formatReport(report));
    const summary = await controlPlaneSummary(cp.httpUrl, owners);
    out('');
    out('Control plane after the run (read back through the API):');
    for (const s of summary) {
      out(`  ${s.tenant.padEnd(10)} usage ${s.usage_total} (denied ${s.usage_denied})  open alerts ${s.alerts_open}  remediations ${s.remediations} (applied ${s.remediations_applied})  discovered ${s.discovered_devices}`);
    }
    const full = { ...report, control_plane: { tenants: summary, counters: cp.counters.snapshot() } };
    if (typeof values.report === 'string') {
      await writeFile(values.report, JSON.stringify(full, null, 2) + '\n');
      out(`Report written to ${values.report}`);
    }
    if (interactive) {
      out('');
      out(`The console and the API stay up until Ctrl-C. Sign in at ${cp.httpUrl}/ (API docs: ${cp.httpUrl}/docs):`);
      out(`  operator  ${config.admin_email}  ${adminPassword}`);
      for (const o of owners) out(`  ${o.tenant.padEnd(9)} ${o.email}  ${o.password}`);
      await new Promise<never>(() => {});
    }
  } catch (err) {
    await cp.stop();
    throw err;
  }
  await cp.stop();
  return report.passed ? 0 : 1;
}

async function controlPlaneSummary(apiUrl: string, owners: Array<{ tenant: string; email: string; password: string }>) {
  const rows = [];
  for (const o of owners) {
    const api = await ApiClient.login(apiUrl, o.email, o.password);
    const { metrics } = await api.get<{ metrics: { usage_total: number; usage_denied: number; alerts_open: number; discovered_devices: number } }>('/api/v1/dashboard/metrics');
    const { remedial_actions } = await api.get<{ remedial_actions: Array<{ status: string }> }>('/api/v1/remedial-actions?limit=1000');
    const applied = remedial_actions.filter((c) => c.status === 'applied').length;
    rows.push({ tenant: o.tenant, ...metrics, remediations: remedial_actions.length, remediations_applied: applied });
  }
  return rows;
}

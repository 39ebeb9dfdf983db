/**
 * `edgeplane demo`: the whole loop on one machine. Starts the embedded control plane on a fresh
 * data dir, provisions the demo enterprises through the API, plays the demo fleet with a live
 * summary, prints the final report, then keeps the API up for exploring until Ctrl-C — or, with
 * --duration/--report, exits with the report's verdict (non-interactive, for CI).
 *
 * A data dir the demo created itself (no --data-dir, no EDGEPLANE_DATA_DIR) is a throwaway: it is
 * removed when the demo ends, however it ends (Ctrl-C, SIGTERM, an error, the end of the run).
 *
 * The final report puts the towers' count of remediation commands next to the control plane's,
 * read back through the API once the acks the towers sent have landed, so the two can be checked
 * against each other rather than compared with a different unit (violations).
 *
 * The control plane logs to a file named on the first lines (cli/demo-log.ts), errors also to
 * stderr: its warn lines (an alert per violation, a tower going offline) used to come as JSON
 * between the live lines. `--log-file -` logs to the terminal as `edgeplane start` does.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomSecret } from '../../shared/auth/secrets.js';
import { projectPath } from '../../shared/project-root.js';
import { CONFIG_OPTIONS, configHelp, loadConfig, type ConfigKey } from '../../shared/config.js';
import { createLogger, type Logger } from '../../shared/logger.js';
import { ApiClient } from '../../simulator/api-client.js';
import { runFleet } from '../../simulator/fleet.js';
import { provisionWorld } from '../../simulator/provision.js';
import { formatReport, type FleetProgress, type FleetReport } from '../../simulator/report.js';
import { numberOption, optionsHelp, parseCommandArgs, type CommandOption } from '../args.js';
import { DemoLogSink } from '../demo-log.js';
import { startEmbedded, type EmbeddedHandle } from '../embedded.js';
import { scenarioFor } from '../scenario-duration.js';
import { onShutdownSignal } from '../shutdown.js';

const options: Record<string, CommandOption> = {
  duration: { type: 'string', describe: 'Seconds of fleet playback (the scenario has 30); with it the demo exits after the report' },
  report: { type: 'string', describe: 'Write the JSON report here; with it the demo exits after the report' },
  scenario: { type: 'string', describe: 'Scenario file to play', default: 'simulator/scenarios/demo.yaml' },
  rate: { type: 'string', describe: 'Override the scenario rate, events/s (the demo scenario: 500)' },
  'log-file': {
    type: 'string',
    describe: "Control plane log (JSON lines; errors also on stderr), kept after the demo; '-' logs to the terminal. Default: a new file in the temp dir",
  },
};

/** What the demo sets differently from `edgeplane start` (flags and env vars still override). */
export const DEMO_CONFIG_DEFAULTS: Partial<Record<ConfigKey, string>> = {
  data_dir: 'a new temp dir, removed when the demo ends',
  log_level: 'warn',
  // The demo provisions tenants through the API in seconds; the production default (100
  // requests/min per principal) would stretch that to minutes.
  rate_limit_per_min: '100000',
  admin_password: 'generated and printed at the end of the run',
};

/** The control plane options block, with the demo's own defaults where they differ. */
function demoConfigHelp(): string {
  let text = configHelp();
  for (const [key, value] of Object.entries(DEMO_CONFIG_DEFAULTS) as Array<[ConfigKey, string]>) {
    const flag = `--${CONFIG_OPTIONS[key].flag.padEnd(26)} ${CONFIG_OPTIONS[key].describe}`;
    text = text.replace(new RegExp(`${escapeRe(flag)}( \\(default: [^)]*\\))?`), `${flag} (demo default: ${value})`);
  }
  return text;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export const demoHelp = `Usage: edgeplane demo [--duration <s>] [--report <file>] [options]

Starts the embedded control plane (broker, API, policy workers, SQLite) on a fresh temporary data
directory, provisions the demo enterprises through the API (2 tenants, 200 devices, 10 towers),
plays the fleet (500 events/s for 30 s, 20 injected violations, one tower outage) with a live
summary every second (p99 of that second; towers offline are named), and prints the final report
with the control plane's own counts next to the towers'. Without --duration/--report the API stays
up (OpenAPI docs at /docs) until Ctrl-C; with either, the demo exits 0 if every event was decided,
every injected violation caught and every expected remediation applied at a tower, else 1. The
temporary data directory is removed on exit (Ctrl-C included).

Demo options:
${optionsHelp(options)}

Control plane options (as for 'edgeplane start'; the demo's own defaults are marked):
${demoConfigHelp()}
  -h, --help                   Show this help
`;

/** One live line: this interval's p99, and the towers that are offline right now. */
export function formatProgress(p: FleetProgress, denied: number): string {
  const started = p.outages_started.filter((t) => !p.offline_towers.includes(t));
  const marks = [...p.offline_towers.map((t) => `${t} offline`), ...started.map((t) => `${t} was offline (staged outage, back)`)];
  const outage = marks.length > 0 ? `  OUTAGE: ${marks.join(', ')}` : '';
  return (
    `  t=${p.elapsed_s.toFixed(0).padStart(3)}s  sent ${String(p.sent).padStart(7)}  decided ${String(p.decided).padStart(7)}` +
    `  p99 ${p.p99_ms} ms (last interval, ${p.decided_in_interval} events)  denied ${denied}${outage}`
  );
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values, config: flags } = parseCommandArgs(argv, options, true);
  if (values.help) {
    process.stdout.write(demoHelp);
    return 0;
  }
  const interactive = values.duration === undefined && values.report === undefined;
  // Before anything is created or started: a bad scenario file is one line and exit 2.
  const scenarioFile = values.scenario === options.scenario!.default ? projectPath('simulator', 'scenarios', 'demo.yaml') : (values.scenario as string);
  const scenario = await scenarioFor(scenarioFile, numberOption(values, 'duration'), numberOption(values, 'rate'));
  const adminPassword = (flags.admin_password as string | undefined) ?? process.env.EDGEPLANE_ADMIN_PASSWORD ?? randomSecret(12);
  const ownDataDir = flags.data_dir === undefined && !process.env.EDGEPLANE_DATA_DIR ? await mkdtemp(join(tmpdir(), 'edgeplane-demo-')) : null;
  if (ownDataDir !== null) {
    // Runs on every exit path, including the signal handler's process.exit and a forced exit.
    process.once('exit', () => rmSync(ownDataDir, { recursive: true, force: true }));
  }
  const config = loadConfig({
    log_level: 'warn',
    rate_limit_per_min: 100_000,
    ...(ownDataDir !== null && { data_dir: ownDataDir }),
    ...flags,
    admin_password: adminPassword,
  });
  const { logger, logFile } = demoLogger(values['log-file'] as string | undefined, ownDataDir, config.log_level, config.log_format);

  const out = (s: string) => process.stdout.write(s + '\n');
  const cp = await startEmbedded(config, { logger });
  onShutdownSignal(cp.stop, logger, config.shutdown_timeout_ms);
  out(`EdgePlane demo — control plane up: API ${cp.httpUrl} (docs ${cp.httpUrl}/docs), MQTT ${cp.mqttUrl}, data ${cp.paths.root}${ownDataDir !== null ? ' (removed on exit)' : ''}`);
  if (logFile !== null) out(`  control plane log: ${logFile.path} (level ${config.log_level} and above, kept after the demo; errors are also shown here)`);

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
      onProgress: (p) => out(formatProgress(p, cp.counters.get('decisions_sent_total', { effect: 'deny' }))),
    });
    out('');
    out(formatReport(report));
    await appliedLanded(cp, report, 5_000);
    const summary = await controlPlaneSummary(cp.httpUrl, owners, report);
    out('');
    out('Control plane after the run (read back through the API), next to what the towers saw:');
    for (const s of summary) {
      const agree = s.commands_applied === s.towers_applied ? 'agree' : 'DISAGREE';
      out(
        `  ${s.tenant.padEnd(10)} usage ${s.usage_total} (denied ${s.usage_denied})  open alerts ${s.alerts_open}  ` +
          `remediation commands ${s.commands} (applied ${s.commands_applied}); towers received ${s.towers_received}, applied ${s.towers_applied}: ${agree}`,
      );
    }
    // The control plane's side of "violations, acked by N distinct commands": a violation while
    // the device's block is in force issues no command.
    const notResent = cp.counters.get('remediations_skipped_total', { reason: 'already_active' });
    out(`  violations that issued no command (a block already in force for the device): ${notResent}`);
    const full = {
      ...report,
      control_plane: {
        tenants: summary,
        remediation_counts_agree: summary.every((s) => s.commands_applied === s.towers_applied),
        remediations_not_resent: notResent,
        counters: cp.counters.snapshot(),
      },
    };
    if (typeof values.report === 'string') {
      await writeFile(values.report, JSON.stringify(full, null, 2) + '\n');
      out(`Report written to ${values.report}`);
    }
    if (logFile !== null) out(`Control plane log: ${logFile.path}`);
    if (interactive) {
      out('');
      out(`The console and the API stay up until Ctrl-C${ownDataDir !== null ? ' (which also removes the demo data)' : ''}. Sign in at ${cp.httpUrl}/ (API docs: ${cp.httpUrl}/docs):`);
      out(`  operator  ${config.admin_email}  ${adminPassword}`);
      for (const o of owners) out(`  ${o.tenant.padEnd(9)} ${o.email}  ${o.password}`);
      await new Promise<never>(() => {});
    }
  } catch (err) {
    await cp.stop();
    logFile?.closeFile();
    throw err;
  }
  await cp.stop();
  logFile?.closeFile();
  return report.passed ? 0 : 1;
}

/**
 * The control plane's logger: to `path` ('-': the terminal, as `edgeplane start`), by default to a
 * new file in the temp dir (beside the demo's own data dir, named after it).
 */
function demoLogger(
  path: string | undefined,
  ownDataDir: string | null,
  level: Parameters<typeof createLogger>[0],
  format: 'auto' | 'json' | 'pretty',
): { logger: Logger; logFile: DemoLogSink | null } {
  if (path === '-') return { logger: createLogger(level, { format }), logFile: null };
  const file = path ?? (ownDataDir !== null ? `${ownDataDir}.log` : join(tmpdir(), `edgeplane-demo-${randomBytes(4).toString('hex')}.log`));
  const logFile = new DemoLogSink(file);
  return { logger: createLogger(level, logFile), logFile };
}

/** Applied commands of the given tenants, as the control plane has recorded them. */
async function appliedInStore(cp: EmbeddedHandle, tenantIds: string[]): Promise<number> {
  let n = 0;
  for (const tenantId of tenantIds) {
    let cursor: string | null = null;
    do {
      const page = await cp.store.commands.list(tenantId, { status: 'applied', limit: 1000, cursor });
      n += page.items.length;
      cursor = page.next_cursor;
    } while (cursor !== null);
  }
  return n;
}

/**
 * Waits (bounded) until the control plane has recorded every ack the towers sent as applied: the
 * last acks may still be on their way when playback ends. Re-checked on each command update.
 */
async function appliedLanded(cp: EmbeddedHandle, report: FleetReport, timeoutMs: number): Promise<void> {
  const tenants = report.commands_per_tenant.map((t) => t.tenant_id);
  if (tenants.length === 0 || (await appliedInStore(cp, tenants)) >= report.commands_applied) return;
  const owner = {};
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done(): void {
      clearTimeout(timer);
      cp.bus.removeAllFor(owner);
      resolve();
    }
    cp.bus.subscribe(
      'command.updated',
      (e) => {
        if (e.command.status !== 'applied') return;
        void appliedInStore(cp, tenants).then((n) => n >= report.commands_applied && done(), done);
      },
      owner,
    );
  });
}

interface TenantSummary {
  tenant: string;
  usage_total: number;
  usage_denied: number;
  alerts_open: number;
  discovered_devices: number;
  /** Remediation commands the control plane issued, and those acked applied. */
  commands: number;
  commands_applied: number;
  /** The same, as the tenant's towers saw them. */
  towers_received: number;
  towers_applied: number;
}

async function controlPlaneSummary(apiUrl: string, owners: Array<{ tenant: string; tenant_id: string; email: string; password: string }>, report: FleetReport): Promise<TenantSummary[]> {
  const rows: TenantSummary[] = [];
  for (const o of owners) {
    const api = await ApiClient.login(apiUrl, o.email, o.password);
    const { metrics } = await api.get<{ metrics: { usage_total: number; usage_denied: number; alerts_open: number; discovered_devices: number } }>('/api/v1/dashboard/metrics');
    const commands: Array<{ status: string }> = [];
    let cursor: string | null = null;
    do {
      const page: { remedial_actions: Array<{ status: string }>; next_cursor: string | null } = await api.get(
        `/api/v1/remedial-actions?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      commands.push(...page.remedial_actions);
      cursor = page.next_cursor;
    } while (cursor !== null);
    const towers = report.commands_per_tenant.find((t) => t.tenant_id === o.tenant_id);
    rows.push({
      tenant: o.tenant,
      usage_total: metrics.usage_total,
      usage_denied: metrics.usage_denied,
      alerts_open: metrics.alerts_open,
      discovered_devices: metrics.discovered_devices,
      commands: commands.length,
      commands_applied: commands.filter((c) => c.status === 'applied').length,
      towers_received: towers?.received ?? 0,
      towers_applied: towers?.applied ?? 0,
    });
  }
  return rows;
}

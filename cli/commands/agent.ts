/**
 * `edgeplane agent`: the edge agent for one tower as a process. Tower software writes usage as
 * JSON lines on stdin; decisions come back as JSON lines on stdout, so any tower stack can
 * integrate through a pipe. Remediation commands are acknowledged; with --state-dir the agent
 * holds blocks on disk (surviving restarts), answers blocked usage locally, and logs every
 * command applied and every block lifted on stderr.
 */
import { createInterface } from 'node:readline';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';
import { createLogger } from '../../shared/logger.js';
import { numberOption, optionsHelp, parseCommandArgs, UsageError, type CommandOption } from '../args.js';

const options: Record<string, CommandOption> = {
  url: { type: 'string', describe: 'Broker URL (mqtt://host:1883 or ws://host:8083)', default: 'mqtt://127.0.0.1:1883' },
  'tower-id': { type: 'string', describe: 'This tower\'s id (its MQTT username)' },
  password: { type: 'string', describe: 'Tower credential from POST /towers/{id}/credentials (env EDGEPLANE_TOWER_PASSWORD)' },
  'batch-max-events': { type: 'string', describe: 'Flush a batch at this many events', default: '100' },
  'batch-max-delay-ms': { type: 'string', describe: 'Flush a batch this long after its first event', default: '5' },
  'buffer-max-events': { type: 'string', describe: 'Events kept while offline; the oldest are dropped beyond it', default: '50000' },
  'state-dir': { type: 'string', describe: 'Keep remediation state in <dir>/enforcer-<tower-id>.json (blocks survive restarts)' },
  'log-level': { type: 'string', describe: 'Log level (logs go to stderr)', default: 'info' },
};

export const agentHelp = `Usage: edgeplane agent --tower-id <id> --password <credential> [options]

Runs the edge agent of one tower. Reads usage events as JSON lines on stdin, e.g.
  {"device_id":"dev-42","app":"slack","action":"upload_file"}
and writes each decision as a JSON line on stdout:
  {"tenant_id":"…","event_id":"…","device_id":"dev-42","effect":"deny","reason":"rule",…}
With --state-dir, remediation blocks are kept on disk (they survive restarts) and usage of a
blocked device/app is answered at once with "reason":"blocked" (still reported to the cloud);
commands applied and blocks lifted are logged on stderr. Invalid input lines are reported on
stderr and skipped. On end of input or SIGINT/SIGTERM the agent flushes what it holds, waits
for outstanding decisions (up to 5 s) and disconnects.

Options:
${optionsHelp(options)}
  -h, --help                   Show this help
`;

export async function agentCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, options, false);
  if (values.help) {
    process.stdout.write(agentHelp);
    return 0;
  }
  const towerId = values['tower-id'];
  const password = (values.password as string | undefined) ?? process.env.EDGEPLANE_TOWER_PASSWORD;
  if (typeof towerId !== 'string') throw new UsageError('--tower-id is required');
  if (!password) throw new UsageError('--password (or EDGEPLANE_TOWER_PASSWORD) is required');
  const stateDir = values['state-dir'] as string | undefined;
  if (stateDir === '') throw new UsageError('--state-dir must not be empty');
  // Logs go to stderr: stdout carries only decisions.
  const logger = createLogger(values['log-level'] as 'info', process.stderr).child({ module: 'agent', tower_id: towerId });
  const agent = new EdgeAgent({
    url: values.url as string,
    towerId,
    password,
    batchMaxEvents: numberOption(values, 'batch-max-events'),
    batchMaxDelayMs: numberOption(values, 'batch-max-delay-ms'),
    bufferMaxEvents: numberOption(values, 'buffer-max-events'),
    ...(stateDir !== undefined ? { stateDir } : {}),
    logger,
  });
  const pending = new Set<string>();
  let drained: (() => void) | null = null;
  agent.on('decision', (tenantId, d) => {
    process.stdout.write(JSON.stringify({ tenant_id: tenantId, ...d }) + '\n');
    pending.delete(d.event_id);
    if (pending.size === 0) drained?.();
  });
  agent.on('decisionBatch', (_t, b) => {
    for (const r of b.rejected) {
      process.stdout.write(JSON.stringify({ event_id: r.event_id, rejected: r.reason }) + '\n');
      pending.delete(r.event_id);
    }
    if (pending.size === 0) drained?.();
  });
  agent.on('error', (err) => logger.error({ err }, 'agent error'));
  agent.on('bundle', (tenantId, b) => logger.info({ tenant_id: tenantId, version: b.version, devices: b.devices.length }, 'policy bundle received'));
  agent.on('dropped', (info) => logger.warn(info, 'offline buffer overflow: events dropped'));
  agent.on('command', (tenantId, c, ack, duplicate) => {
    const fields = { tenant_id: tenantId, command_id: c.id, type: c.type, device_id: c.device_id, app: c.app, duration_s: c.duration_s, status: ack.status, reason: ack.reason, duplicate };
    if (ack.status === 'applied') logger.info(fields, duplicate ? 'command already applied: acked again' : 'command applied');
    else logger.warn(fields, 'command failed');
  });
  agent.on('blockLifted', (b, cause) =>
    logger.info({ tenant_id: b.tenant_id, command_id: b.command_id, type: b.type, device_id: b.device_id, app: b.app, cause }, 'block lifted'),
  );
  await agent.start();
  logger.info('agent connected');

  let stopping: Promise<void> | null = null;
  const shutdown = () =>
    (stopping ??= (async () => {
      await agent.flush(5000);
      if (pending.size > 0) {
        await new Promise<void>((resolve) => {
          drained = resolve;
          setTimeout(resolve, 5000).unref();
        });
      }
      await agent.stop();
    })());
  process.once('SIGINT', () => void shutdown().then(() => process.exit(0)));
  process.once('SIGTERM', () => void shutdown().then(() => process.exit(0)));

  const lines = createInterface({ input: process.stdin });
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as Parameters<EdgeAgent['observe']>[0];
      const { event_id, tenant_id } = agent.observe(e);
      if (tenant_id) pending.add(event_id);
    } catch (err) {
      process.stderr.write(`line ${lineNo}: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
  await shutdown();
  return 0;
}

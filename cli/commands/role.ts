/**
 * `edgeplane broker | worker | api`: the distributed mode's process roles. One helper, because the
 * three differ only in what they start and what their --help says.
 */
import { configHelp, loadConfig, type Config } from '../../shared/config.js';
import { createLogger, type Logger } from '../../shared/logger.js';
import { parseCommandArgs } from '../args.js';
import { startApiRole, startBrokerRole, startWorkerRole, type RoleHandle } from '../roots/distributed.js';
import { runUntilSignal } from '../shutdown.js';

interface RoleSpec {
  name: 'broker' | 'worker' | 'api';
  description: string;
  start: (config: Config, opts: { logger: Logger; signal?: AbortSignal }) => Promise<RoleHandle>;
}

const COMMON = `Distributed mode: every role needs --redis-url and the same --store-url (mongodb://… for
production; sqlite:<file> shared on one host for trials), --data-dir (signing keys and the
service secret, shared by every process: mount one secrets directory) and --redis-prefix.`;

function roleHelp(spec: RoleSpec): string {
  return `Usage: edgeplane ${spec.name} [options]

${spec.description}

${COMMON}

Options (flag > environment variable > default):
${configHelp()}
  -h, --help                   Show this help
`;
}

function roleCommand(spec: RoleSpec): (argv: string[]) => Promise<number> {
  return async (argv) => {
    const { values, config: flags } = parseCommandArgs(argv, {}, true);
    if (values.help) {
      process.stdout.write(roleHelp(spec));
      return 0;
    }
    const config = loadConfig(flags);
    const logger = createLogger(config.log_level, { format: config.log_format }).child({ role: spec.name });
    await runUntilSignal((signal) => spec.start(config, { logger, signal }), logger, config.shutdown_timeout_ms);
    return 0;
  };
}

export const brokerCommand = roleCommand({
  name: 'broker',
  description: `Runs one MQTT broker node (TCP --mqtt-port, WebSocket --mqtt-ws-port). Sessions, queued QoS 1
messages and retained messages live in Redis, so a tower may connect to any node and survives the
death of the node it was on. Uplinks are queued for the workers in micro-batches; a PUBACK means
the message is durably queued. /healthz, /readyz and /metrics on --http-port.`,
  start: startBrokerRole,
});

export const workerCommand = roleCommand({
  name: 'worker',
  description: `Runs one policy worker: decides queued uplinks (bounded by --ingest-concurrency), stores them,
publishes decisions and commands through the broker node(s) in --mqtt-url, runs command resends and
expiry, webhook deliveries and retention. Start as many as you need; each piece of work is done
once. /healthz, /readyz and /metrics on --http-port.`,
  start: startWorkerRole,
});

export const apiCommand = roleCommand({
  name: 'api',
  description: `Runs one HTTP API process (REST under /api/v1, OpenAPI at /docs, live feeds over WebSocket) on
--http-port. Creates the platform operator on first start. Run several behind a load balancer.`,
  start: startApiRole,
});

import { configHelp, loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/logger.js';
import { parseCommandArgs } from '../args.js';
import { startEmbedded } from '../embedded.js';
import { runUntilSignal } from '../shutdown.js';

export const startHelp = `Usage: edgeplane start [options]

Runs the embedded control plane in one process: MQTT broker (TCP + WebSocket, and TLS with
--tls-cert-file/--tls-key-file), policy workers, HTTP API (OpenAPI docs at /docs; HTTPS with TLS)
and the SQLite store in the data directory. One process per data directory: a second start on a
directory in use is refused (lock file <data-dir>/edgeplane.lock). A start that cannot bind a port
or write the data dir says which option to change and writes nothing.
SIGINT/SIGTERM drain in-flight work and shut down gracefully, within --shutdown-timeout-ms.
Logs: human-readable on a terminal, JSON lines when piped (--log-format).

Options (flag > environment variable > default):
${configHelp()}
  -h, --help                   Show this help
`;

export async function startCommand(argv: string[]): Promise<number> {
  const { values, config: flags } = parseCommandArgs(argv, {}, true);
  if (values.help) {
    process.stdout.write(startHelp);
    return 0;
  }
  const config = loadConfig(flags);
  const logger = createLogger(config.log_level, { format: config.log_format });
  await runUntilSignal((signal) => startEmbedded(config, { logger, signal }), logger, config.shutdown_timeout_ms);
  return 0;
}

/**
 * Startup failures that an operator fixes by changing one option. The message names the option
 * (flag and env var) and says what is wrong, and the CLI prints it as one line without a stack
 * trace: `edgeplane: --http-port 8080 is in use on 0.0.0.0 (EDGEPLANE_HTTP_PORT) …`.
 */
import { CONFIG_OPTIONS, envName, type Config, type ConfigKey } from '../shared/config.js';

export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

/** `--http-port` (EDGEPLANE_HTTP_PORT) */
export function optionName(key: ConfigKey): string {
  return `--${CONFIG_OPTIONS[key].flag} (${envName(key)})`;
}

export interface ListenSpec {
  portKey: ConfigKey;
  hostKey: ConfigKey;
}

/** Every listener a process may open, by the options that place it. */
export const LISTENERS = {
  http: { portKey: 'http_port', hostKey: 'http_host' },
  mqtt: { portKey: 'mqtt_port', hostKey: 'mqtt_host' },
  mqttWs: { portKey: 'mqtt_ws_port', hostKey: 'mqtt_host' },
  mqttTls: { portKey: 'mqtt_tls_port', hostKey: 'mqtt_host' },
  radsec: { portKey: 'radsec_port', hostKey: 'radsec_host' },
} as const satisfies Record<string, ListenSpec>;

/** Explains a listen() failure in terms of the options that chose the address. */
export function listenError(err: unknown, spec: ListenSpec, config: Config): StartupError | null {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const port = config[spec.portKey] as number;
  const host = config[spec.hostKey] as string;
  const portFlag = `--${CONFIG_OPTIONS[spec.portKey].flag}`;
  const hostFlag = `--${CONFIG_OPTIONS[spec.hostKey].flag}`;
  switch (code) {
    case 'EADDRINUSE':
      return new StartupError(
        `${portFlag} ${port} is in use on ${host}: another process listens there; stop it or choose another port (${portFlag} / ${envName(spec.portKey)})`,
      );
    case 'EACCES':
      return new StartupError(
        `${portFlag} ${port} needs privileges this process lacks (ports below 1024 need root or CAP_NET_BIND_SERVICE); choose another port (${portFlag} / ${envName(spec.portKey)})`,
      );
    case 'EADDRNOTAVAIL':
      return new StartupError(`${hostFlag} ${host} is not an address of this machine; use one of its addresses or 0.0.0.0 (${hostFlag} / ${envName(spec.hostKey)})`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new StartupError(`${hostFlag} ${host} does not resolve to an address; check the name (${hostFlag} / ${envName(spec.hostKey)})`);
    default:
      return null;
  }
}

/**
 * Maps a failure that escaped startup to an option when the error says which (a listen error
 * carries its port). Anything else keeps its own message, still printed without a stack.
 */
export function explainStartupError(err: unknown, config: Config): Error {
  if (err instanceof StartupError) return err;
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
  if (e?.syscall === 'listen' && typeof e.port === 'number') {
    for (const spec of Object.values(LISTENERS)) {
      if (config[spec.portKey] === e.port) {
        const explained = listenError(err, spec, config);
        if (explained) return explained;
      }
    }
  }
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Checks made before a process writes anything: the data directory can be written, every
 * address it will listen on is free, the TLS files can be read and belong together. A start that
 * would fail on any of these fails here with the option to change, and leaves no operator, no
 * password file and no secrets behind. (A port taken between this check and the real listen()
 * still fails startup, explained the same way by explainStartupError.)
 */
import { X509Certificate } from 'node:crypto';
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { CONFIG_OPTIONS, envName, type Config } from '../shared/config.js';
import { LISTENERS, listenError, StartupError, type ListenSpec } from './startup-error.js';

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  /** --radsec-ca-file: the CA of RadSec peers' client certificates (with --radsec-port). */
  radsecCa?: Buffer;
}

export interface PreflightResult {
  /** Present when --tls-cert-file/--tls-key-file are set. */
  tls: TlsMaterial | null;
}

export type ListenerName = keyof typeof LISTENERS;

export async function preflight(config: Config, listeners: readonly ListenerName[]): Promise<PreflightResult> {
  await checkDataDir(config.data_dir);
  const tls = await loadTls(config);
  // RadSec is off at port 0 (any other listener at 0 takes a free port).
  const wanted = listeners.filter((l) => (l !== 'mqttTls' || tls !== null) && (l !== 'radsec' || config.radsec_port !== 0));
  checkDistinctPorts(config, wanted);
  for (const l of wanted) await checkListen(config, LISTENERS[l]);
  return { tls };
}

export function tlsConfigured(config: Config): boolean {
  return config.tls_cert_file !== undefined && config.tls_key_file !== undefined;
}

async function checkDataDir(dir: string): Promise<void> {
  const flag = `--data-dir ${dir}`;
  const hint = `(--data-dir / ${envName('data_dir')})`;
  let path = resolve(dir);
  // The directory itself, or (when it is yet to be created) its nearest existing ancestor.
  for (;;) {
    let isDir: boolean;
    try {
      isDir = (await stat(path)).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOTDIR: a component above is a file; walking up finds it and says so.
      if ((code === 'ENOENT' || code === 'ENOTDIR') && dirname(path) !== path) {
        path = dirname(path);
        continue;
      }
      throw new StartupError(`${flag} cannot be used: ${(err as Error).message} ${hint}`);
    }
    if (!isDir) {
      const what = path === resolve(dir) ? 'is a file, not a directory' : `cannot be created: ${path} is a file`;
      throw new StartupError(`${flag} ${what} ${hint}`);
    }
    try {
      await access(path, constants.W_OK | constants.X_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EACCES';
      const where = path === resolve(dir) ? '' : ` (its parent ${path} is not writable)`;
      throw new StartupError(`${flag} is not writable${where}: ${code}; choose a writable directory ${hint}`);
    }
    return;
  }
}

async function loadTls(config: Config): Promise<TlsMaterial | null> {
  if (!tlsConfigured(config)) return null;
  const read = async (key: 'tls_cert_file' | 'tls_key_file' | 'tls_ca_file' | 'radsec_ca_file'): Promise<Buffer> => {
    const file = config[key]!;
    try {
      return await readFile(file);
    } catch (err) {
      throw new StartupError(`--${CONFIG_OPTIONS[key].flag} ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (${envName(key)})`);
    }
  };
  const cert = await read('tls_cert_file');
  const key = await read('tls_key_file');
  const ca = config.tls_ca_file !== undefined ? await read('tls_ca_file') : undefined;
  try {
    createSecureContext({ cert, key, ...(ca ? { ca } : {}) });
  } catch (err) {
    const message = (err as Error).message;
    const mismatch = /key values mismatch|KEY_VALUES_MISMATCH/i.test(message);
    throw new StartupError(
      mismatch
        ? `--tls-key-file ${config.tls_key_file} is not the key of --tls-cert-file ${config.tls_cert_file}`
        : `--tls-cert-file ${config.tls_cert_file} / --tls-key-file ${config.tls_key_file} are not a usable PEM certificate and key: ${message}`,
    );
  }
  const radsecCa = config.radsec_ca_file !== undefined ? await read('radsec_ca_file') : undefined;
  if (radsecCa) {
    try {
      // A file with no certificate in it would let no peer in, silently: refuse it here.
      new X509Certificate(radsecCa);
      createSecureContext({ ca: radsecCa });
    } catch (err) {
      throw new StartupError(`--radsec-ca-file ${config.radsec_ca_file} is not a usable PEM CA bundle: ${(err as Error).message} (${envName('radsec_ca_file')})`);
    }
  }
  return { cert, key, ...(ca ? { ca } : {}), ...(radsecCa ? { radsecCa } : {}) };
}

function checkDistinctPorts(config: Config, listeners: readonly ListenerName[]): void {
  const seen = new Map<number, ListenSpec>();
  for (const l of listeners) {
    const spec = LISTENERS[l];
    const port = config[spec.portKey] as number;
    if (port === 0) continue;
    const other = seen.get(port);
    if (other) {
      throw new StartupError(`--${CONFIG_OPTIONS[spec.portKey].flag} and --${CONFIG_OPTIONS[other.portKey].flag} are both ${port}: each listener needs its own port`);
    }
    seen.set(port, spec);
  }
}

/** Binds the address and lets it go: the cheapest proof that listen() will work. */
async function checkListen(config: Config, spec: ListenSpec): Promise<void> {
  const server = createServer();
  try {
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', reject);
      server.listen({ port: config[spec.portKey] as number, host: config[spec.hostKey] as string, exclusive: true }, () => resolveListen());
    });
  } catch (err) {
    throw listenError(err, spec, config) ?? err;
  } finally {
    await new Promise<void>((r) => (server.listening ? server.close(() => r()) : r()));
  }
}

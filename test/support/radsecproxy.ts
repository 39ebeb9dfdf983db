/**
 * radsecproxy (Debian package radsecproxy) as a third-party RadSec peer: it takes radclient's
 * RADIUS/UDP on a loopback port and forwards it over RADIUS/TLS, with its own client
 * certificate, to the control plane's RadSec listener, the way a carrier's proxy carries its
 * NAS. RADSECPROXY is null when it is not installed; suites then skip with one line, except
 * under CI=true where they fail.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

function find(): string | null {
  const onPath = spawnSync('sh', ['-c', 'command -v radsecproxy || ls /usr/sbin/radsecproxy 2>/dev/null'], { encoding: 'utf8' }).stdout.trim();
  return onPath.split('\n')[0] || null;
}

export const RADSECPROXY = find();
export const RADSECPROXY_SKIP_LINE = 'radsecproxy not found (apt-get install -y radsecproxy)';

export interface RadsecproxyOptions {
  /** Loopback UDP port radclient sends to, and the secret it signs with. */
  udpPort: number;
  udpSecret: string;
  /** The RadSec listener radsecproxy forwards to (127.0.0.1). */
  serverPort: number;
  /** PEM files: the CA that issued the listener's certificate, and radsecproxy's own certificate and key. */
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface RunningRadsecproxy {
  /** What it printed (debug level 3), for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export async function startRadsecproxy(dir: string, name: string, o: RadsecproxyOptions): Promise<RunningRadsecproxy> {
  if (!RADSECPROXY) throw new Error(RADSECPROXY_SKIP_LINE);
  const conf = join(dir, `${name}.conf`);
  await writeFile(
    conf,
    [
      `ListenUDP 127.0.0.1:${o.udpPort}`,
      'tls default {',
      `    CACertificateFile ${o.caFile}`,
      `    CertificateFile ${o.certFile}`,
      `    CertificateKeyFile ${o.keyFile}`,
      '}',
      'client radclient {',
      '    host 127.0.0.1',
      '    type udp',
      `    secret ${o.udpSecret}`,
      '}',
      'server edgeplane {',
      '    host 127.0.0.1',
      `    port ${o.serverPort}`,
      '    type tls',
      '}',
      'realm * {',
      '    accountingServer edgeplane',
      '}',
      '',
    ].join('\n'),
  );
  let out = '';
  const child: ChildProcess = spawn(RADSECPROXY, ['-f', '-d', '3', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const listening = new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      out += d.toString();
      // It binds its UDP listener after reading the configuration, then says so.
      if (/radsecproxy .* starting/i.test(out) || /udpserverrd|listening/i.test(out)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`radsecproxy exited (${code}) before it listened:\n${out}`)));
    child.once('error', reject);
  });
  await listening;
  return {
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

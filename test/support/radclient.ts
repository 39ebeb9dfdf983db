/**
 * FreeRADIUS' `radclient` as a test client (freeradius-utils): packets are radclient's attribute
 * lines, one packet per array. RADCLIENT is null when it is not installed; suites then skip with
 * one line, except under CI=true where they fail.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';

export const RADCLIENT = spawnSync('sh', ['-c', 'command -v radclient'], { encoding: 'utf8' }).stdout.trim() || null;
export const RADCLIENT_REQUIRED = process.env['CI'] === 'true';
export const RADCLIENT_SKIP_LINE = 'radclient not found (apt-get install -y freeradius-utils)';

export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export function radclient(
  port: number,
  secret: string,
  packets: string[][],
  opts: { count?: number; expectReply?: boolean; command?: 'acct' | 'status' } = {},
): Promise<{ code: number | null; out: string }> {
  // Expecting no reply: one try with a short timeout (waiting it out is the only way to see
  // "no answer"; nothing asserts how long it took).
  const timing = opts.expectReply === false ? ['-t', '0.3', '-r', '1'] : ['-t', '2', '-r', '3'];
  const args = ['-x', ...timing, ...(opts.count ? ['-c', String(opts.count)] : []), `127.0.0.1:${port}`, opts.command ?? 'acct', secret];
  return new Promise((resolve, reject) => {
    if (!RADCLIENT) return reject(new Error(RADCLIENT_SKIP_LINE));
    const child = spawn(RADCLIENT, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end(packets.map((p) => p.join('\n')).join('\n\n') + '\n');
  });
}

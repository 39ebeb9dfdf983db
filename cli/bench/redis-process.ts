/**
 * Starts a real redis-server on a free loopback port with its own temporary directory, for tests
 * and the bench. Nothing here is a mock: the point is to exercise our Redis adapters, BullMQ and
 * the Aedes Redis persistence against the real server.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS_INSTALL_HINT = 'apt-get install -y redis-server';

/** Path of redis-server on this machine, or null. */
export function redisServerBinary(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const path = r.stdout.trim();
  return r.status === 0 && path ? path : null;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface RedisServerHandle {
  url: string;
  port: number;
  dir: string;
  process: ChildProcess;
  /** SIGTERM and wait; removes the directory. */
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  /** Append-only file on (fsync every second), as in the distributed deployment. Default false. */
  appendonly?: boolean;
  port?: number;
}

export async function startRedisServer(opts: RedisServerOptions = {}): Promise<RedisServerHandle> {
  const bin = redisServerBinary();
  if (!bin) throw new Error(`redis-server not found (${REDIS_INSTALL_HINT})`);
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-redis-'));
  // A free port can be taken between the probe and redis' bind: retry a few times.
  for (let attempt = 0; ; attempt++) {
    const port = opts.port ?? (await freePort());
    const args = [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--save', '',
      '--appendonly', opts.appendonly ? 'yes' : 'no',
      '--appendfsync', 'everysec',
      '--protected-mode', 'yes',
      // 'notice' prints the "Ready to accept connections" line we wait for.
      '--loglevel', 'notice',
    ];
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const ready = await new Promise<boolean>((resolve) => {
      let out = '';
      const onData = (b: Buffer) => {
        out += b.toString();
        if (out.includes('Ready to accept connections')) resolve(true);
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', () => resolve(false));
    });
    if (ready) {
      child.stdout.resume();
      child.stderr.resume();
      return {
        url: `redis://127.0.0.1:${port}`,
        port,
        dir,
        process: child,
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) {
            const exited = new Promise((r) => child.once('exit', r));
            child.kill('SIGTERM');
            await exited;
          }
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    child.kill('SIGKILL');
    if (attempt >= 4 || opts.port !== undefined) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`redis-server did not start on port ${port}`);
    }
  }
}

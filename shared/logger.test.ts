/**
 * Log lines keep one value per key however loggers are composed (a role logger, a module child,
 * a call site naming its own module), and logging to a pipe nobody reads never blocks the
 * process (the child-process check is in test/e2e/cli.test.ts).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { duplicateKeys, LogCapture } from '../test/support/log-lines.js';
import { createLogger, flushLogger } from './logger.js';

describe('createLogger', () => {
  it('a child binding replaces its parent\'s value; a call-site key replaces a binding for that line', () => {
    const capture = new LogCapture();
    const role = createLogger('info', capture).child({ role: 'worker' });
    const workers = role.child({ module: 'workers' });
    workers.child({ module: 'commands' }).info('nested');
    workers.info({ module: 'retention', purged: 3 }, 'call site');
    workers.info({ service: 'other' }, 'base key');
    workers.error({ err: new Error('boom'), module: 'webhooks' }, 'with an error');
    workers.info('plain');
    const parsed = capture.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.map((p) => [p.msg, p.module, p.role])).toEqual([
      ['nested', 'commands', 'worker'],
      ['call site', 'retention', 'worker'],
      ['base key', 'workers', 'worker'],
      ['with an error', 'webhooks', 'worker'],
      ['plain', 'workers', 'worker'],
    ]);
    expect(parsed[1]).toMatchObject({ purged: 3 });
    expect(parsed[2]).toMatchObject({ service: 'other' });
    expect(capture.lines.flatMap(duplicateKeys)).toEqual([]);
  });

  it('flushLogger resolves for a logger with nothing to flush', async () => {
    await flushLogger(createLogger('info', new LogCapture()), 1000);
  });

  it('on a pipe, the lines of a turn are written at its end, and a process that exits first still writes them', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/log-then-exit.ts', import.meta.url)), '500'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(0);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { i: number; msg: string });
    expect(lines.map((l) => l.i)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });
});

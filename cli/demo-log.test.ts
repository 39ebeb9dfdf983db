/**
 * The demo's control plane log: every line to the file, only errors also to stderr (so the live
 * lines stay readable), and a file that stops taking lines (a full disk: /dev/full) costs the
 * file, not the demo.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../shared/logger.js';
import { DemoLogSink } from './demo-log.js';

describe('DemoLogSink', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-demo-log-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes every line to the file and only error lines to stderr', async () => {
    const stderr: string[] = [];
    const sink = new DemoLogSink(join(dir, 'demo.log'), (t) => stderr.push(t));
    const logger = createLogger('warn', sink).child({ module: 'events' });
    logger.info({ event: 'ignored' }, 'below the level');
    logger.warn({ event: 'alert_opened' }, 'alert opened');
    logger.error({ event: 'store_full' }, 'store full');
    logger.fatal({ event: 'crash' }, 'fatal');
    sink.closeFile();

    const lines = (await readFile(join(dir, 'demo.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { event: string; level: number });
    expect(lines.map((l) => l.event)).toEqual(['alert_opened', 'store_full', 'crash']);
    expect(stderr.map((l) => (JSON.parse(l) as { event: string }).event)).toEqual(['store_full', 'crash']);
  });

  it('a file that stops taking lines costs the file only: said once, errors still on stderr', () => {
    const stderr: string[] = [];
    const sink = new DemoLogSink('/dev/full', (t) => stderr.push(t));
    const logger = createLogger('warn', sink);
    expect(() => {
      logger.warn({ event: 'alert_opened' }, 'alert opened');
      logger.warn({ event: 'alert_opened' }, 'alert opened');
      logger.error({ event: 'store_full' }, 'store full');
    }).not.toThrow();
    expect(sink.dropped).toBe(3);
    expect(stderr).toHaveLength(2);
    expect(stderr[0]).toMatch(/control plane log \/dev\/full stopped taking lines \(ENOSPC\)/);
    expect(JSON.parse(stderr[1]!)).toMatchObject({ event: 'store_full' });
  });

  it('a path that cannot be opened fails at once, with the path', () => {
    const path = join(dir, 'missing', 'demo.log');
    expect(() => new DemoLogSink(path)).toThrow(/ENOENT.*missing/);
    expect(existsSync(path)).toBe(false);
  });
});

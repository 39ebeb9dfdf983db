/**
 * Fault injection on `edgeplane agent`'s input and options: a line of megabytes with no newline
 * (readline held all of it, so the process grew without bound; now a line past MAX_LINE_BYTES is
 * answered at once and skipped to its end), hostile bytes and values on stdin, and options that
 * made the agent exit 1 or misbehave instead of exiting 2 with the option named.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LineSplitter, MAX_LINE_BYTES, type InputLine } from '../cli/commands/agent.js';
import { jsonLine, runCli, startCli } from '../test/support/cli.js';
import { journalDir } from './journal-dir.js';
import { startTestBroker, type TestBroker } from './test-broker.js';
import { closedPort } from '../test/support/ports.js';

const texts = (lines: InputLine[]): Array<string | null> => lines.map((l) => ('text' in l ? l.text : null));

describe('LineSplitter', () => {
  it('holds at most MAX_LINE_BYTES of a line: a line without end is reported once, as soon as it is too long, and skipped to its break', () => {
    const s = new LineSplitter(MAX_LINE_BYTES);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const out: InputLine[] = [];
    let reportedAfter = -1;
    for (let i = 0; i < 128; i++) {
      // 8 MiB in all, no newline
      out.push(...s.push(chunk));
      if (out.length > 0 && reportedAfter < 0) reportedAfter = i;
      expect(s.buffered).toBeLessThanOrEqual(MAX_LINE_BYTES);
    }
    expect(out).toEqual([{ tooLong: true }]);
    expect(reportedAfter).toBe(Math.floor(MAX_LINE_BYTES / chunk.length));
    // Its end produces nothing more; the next line is read as usual.
    expect(texts(s.push(Buffer.from('xxx\n{"a":1}\n')))).toEqual(['{"a":1}']);
    expect(s.end()).toEqual([]);
  });

  it('a line of exactly MAX_LINE_BYTES is read; one byte more is not', () => {
    const s = new LineSplitter(MAX_LINE_BYTES);
    const exact = 'y'.repeat(MAX_LINE_BYTES);
    expect(texts(s.push(Buffer.from(`${exact}\n${exact}z\nok`)))).toEqual([exact, null]);
    expect(texts(s.end())).toEqual(['ok']);
  });

  it('splits at \\n, \\r\\n and a lone \\r as readline did, wherever the chunks are cut, and decodes invalid UTF-8 as U+FFFD', () => {
    const input = Buffer.concat([Buffer.from('a\r\nb\rc\n\n\u00e9t\u00e9\r\n'), Buffer.from([0x64, 0xff, 0xfe, 0x0a]), Buffer.from('last')]);
    const expected = ['a', 'b', 'c', '', '\u00e9t\u00e9', 'd\ufffd\ufffd', 'last'];
    for (let cut = 0; cut <= input.length; cut++) {
      const s = new LineSplitter(MAX_LINE_BYTES);
      const got = [...s.push(input.subarray(0, cut)), ...s.push(input.subarray(cut)), ...s.end()];
      expect(texts(got), `cut at ${cut}`).toEqual(expected);
    }
    const bytewise = new LineSplitter(MAX_LINE_BYTES);
    const got: InputLine[] = [];
    for (const b of input) got.push(...bytewise.push(Buffer.from([b])));
    expect(texts([...got, ...bytewise.end()])).toEqual(expected);
  });
});

describe('edgeplane agent against hostile input', () => {
  let broker: TestBroker;
  beforeAll(async () => {
    broker = await startTestBroker();
  });
  afterAll(async () => {
    await broker.close();
  });

  it('answers a line of megabytes as soon as it is too long, before its newline, then every later line, each once', async () => {
    const p = startCli(['agent', '--url', broker.url, '--tower-id', 'T-audit', '--password', 'x', '--log-level', 'warn', '--decision-timeout-ms', '2000'], { EDGEPLANE_RUN: 'source' });
    const stdin = p.child.stdin;
    // 4 MiB and no newline yet: readline held it all and answered nothing until the newline.
    const mib = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 0; i < 4; i++) stdin.write(mib);
    const first = jsonLine(await p.waitForLine((l) => jsonLine(l)?.line === 1))!;
    expect(first).toMatchObject({ event_id: null, rejected: 'invalid_input', message: `line longer than ${MAX_LINE_BYTES} bytes: not read` });
    stdin.write(mib);
    stdin.write(
      Buffer.concat([
        Buffer.from('xx\n'),
        Buffer.from('{"device_id":"dev-9","app":"slack","action":"send"}\n'),
        // A NUL escaped in JSON, then raw bytes: invalid UTF-8 and a NUL.
        Buffer.from('{"device_id":"dev-\\u0000","app":"slack","action":"send"}\n'),
        Buffer.from([0x7b, 0xff, 0xfe, 0x00, 0x0a]),
        Buffer.from('{"device_id":"dev-9","app":"slack","action":"send","ts":1e20}\n'),
        Buffer.from('{"device_id":"dev-9","app":"slack","action":"send","bytes":1e300}\r\n'),
        // Usage of another tower is not this one's to report; its own id is fine.
        Buffer.from('{"device_id":"dev-9","app":"slack","action":"send","tower_id":"T-other"}\n'),
        Buffer.from('{"device_id":"dev-9","app":"slack","action":"send","tower_id":"T-audit"}\n'),
      ]),
    );
    stdin.end();
    expect(await p.exit).toBe(0);
    const out = p.stdout.filter(Boolean).map((l) => jsonLine(l)!);
    expect(out.map((o) => o.line as number).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const byLine = new Map(out.map((o) => [o.line as number, o]));
    expect(byLine.get(2)).toMatchObject({ device_id: 'dev-9', reason: 'unknown_device', source: 'local' });
    expect(byLine.get(3)).toMatchObject({ rejected: 'invalid_input', message: expect.stringMatching(/device_id/) });
    expect(byLine.get(4)).toMatchObject({ rejected: 'invalid_input', message: expect.stringMatching(/not JSON/) });
    expect(byLine.get(5)).toMatchObject({ rejected: 'invalid_input', message: expect.stringMatching(/^ts must be/) });
    expect(byLine.get(6)).toMatchObject({ rejected: 'invalid_input', message: expect.stringMatching(/^bytes must be/) });
    expect(byLine.get(7)).toMatchObject({ event_id: null, rejected: 'invalid_input', message: expect.stringMatching(/tower_id "T-other" is not this agent's tower/) });
    expect(byLine.get(8)).toMatchObject({ device_id: 'dev-9', reason: 'unknown_device' });
  });
});

describe('edgeplane agent: one agent per tower and state dir', () => {
  let broker: TestBroker;
  let dir: string;
  beforeAll(async () => {
    broker = await startTestBroker();
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-lock-'));
  });
  afterAll(async () => {
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a second agent of the same tower on the same --state-dir is refused naming the holder (they shared one journal); the lock goes with the first', async () => {
    const args = ['agent', '--url', broker.url, '--tower-id', 'T-lock', '--password', 'x', '--state-dir', dir, '--log-format', 'json'];
    const first = startCli(args, { EDGEPLANE_RUN: 'source' });
    try {
      await first.waitForLine((l) => jsonLine(l)?.event === 'connected');
      const second = await runCli(args, { env: { EDGEPLANE_RUN: 'source' } });
      expect(second.code, second.stderr).toBe(1);
      expect(second.stderr).toMatch(new RegExp(`^edgeplane: --state-dir .+ is in use by another edgeplane agent of tower T-lock \\(pid ${first.child.pid},`));
      expect(second.stderr).not.toMatch(/\n\s+at /);
      // Another tower may share the state dir: its files are its own.
      const other = await runCli(['agent', '--url', broker.url, '--tower-id', 'T-other', '--password', 'x', '--state-dir', dir], { env: { EDGEPLANE_RUN: 'source' } });
      expect(other.code, other.stderr).toBe(0);
      first.child.stdin.end();
      expect(await first.exit).toBe(0);
      // The lock file is kept (rewritten in place at the next start, which needs no room on the
      // disk) and says it was let go.
      const lock = JSON.parse(await readFile(join(journalDir(dir, 'T-lock'), 'edgeplane.lock'), 'utf8')) as { pid: number; released_at?: string };
      expect(lock).toMatchObject({ pid: first.child.pid, released_at: expect.any(String) });
    } finally {
      if (first.child.exitCode === null && first.child.signalCode === null) first.child.kill('SIGKILL');
    }
  });

  it('a --state-dir that cannot be used (a file) is a bad option: exit 2, not "refused the connection" (exit 4)', async () => {
    const file = join(dir, 'not-a-dir');
    await writeFile(file, 'x');
    const r = await runCli(['agent', '--url', broker.url, '--tower-id', 'T-file', '--password', 'x', '--state-dir', file], { env: { EDGEPLANE_RUN: 'source' } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^edgeplane: --state-dir .+ cannot be used: E[A-Z]+/);
  });
});

describe('edgeplane agent refuses bad options with exit 2, naming the option', () => {
  it.each([
    ['--tower-id', ['--tower-id', 'bad id!']],
    ['--batch-max-events', ['--batch-max-events', '1.5']],
    ['--buffer-max-events', ['--buffer-max-events', '0']],
    ['--connect-timeout-ms', ['--connect-timeout-ms', '3000000000']],
    ['--decision-timeout-ms', ['--decision-timeout-ms', '3000000000']],
    ['--local-deadline-ms', ['--local-deadline-ms', '1e10']],
    ['--log-level', ['--log-level', 'loud']],
    ['--max-packet-mb', ['--max-packet-mb', '0']],
    ['--max-packet-mb', ['--max-packet-mb', '300']],
  ])('%s', async (flag, args) => {
    // Unreachable on purpose: an option that slipped through fails differently (exit 3).
    const url = `mqtt://127.0.0.1:${await closedPort()}`;
    const base = ['agent', '--tower-id', 'T1', '--password', 'x', '--url', url, '--connect-timeout-ms', '1000'];
    const r = await runCli([...base, ...args], { env: { EDGEPLANE_RUN: 'source' } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(flag);
    expect(r.stderr).toContain('Run with --help for usage.');
    expect(r.stdout).toBe('');
  });
});

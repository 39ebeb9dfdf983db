/**
 * The agent kept writing answers to stdout when nothing read it: a pipe's stream accepts every
 * write and queues it, so a reader that stopped grew the agent by ~100 bytes per input line for
 * as long as input came. Now input waits while `OUTPUT_PAUSE_BYTES` wait in stdout, answers of
 * events already in flight are capped at `maxBytes` (beyond: dropped and counted), and reading
 * resumes once the reader drains the pipe.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, jsonLine } from '../test/support/cli.js';
import { AnswerOutput, OUTPUT_PAUSE_BYTES } from './answer-output.js';
import { startTestBroker, type TestBroker } from './test-broker.js';

/** A Writable whose reader takes nothing until `release()`: every write waits, queued. */
function stalledWriter(highWaterMark: number) {
  const held: Array<() => void> = [];
  let released = false;
  let taken = 0;
  const out = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, cb) {
      taken += chunk.length;
      if (released) cb();
      else held.push(() => cb());
    },
  });
  return {
    out,
    taken: () => taken,
    release: () => {
      released = true;
      for (const cb of held.splice(0)) cb();
    },
  };
}

describe('AnswerOutput', () => {
  it('a reader that takes nothing: input stops being read at the pause mark, answers in flight are capped (dropped and counted), and all input is processed once it drains', async () => {
    const pauseBytes = 8 * 1024;
    const maxBytes = 64 * 1024;
    const w = stalledWriter(1024);
    const drops: number[] = [];
    const pauses: Array<[boolean, number]> = [];
    let onFirstPause: () => void = () => {};
    const firstPause = new Promise<void>((resolve) => (onFirstPause = resolve));
    const output = new AnswerOutput(w.out, {
      pauseBytes,
      maxBytes,
      onDrop: (n) => drops.push(n),
      onPause: (p, q) => {
        pauses.push([p, q]);
        if (p) onFirstPause();
      },
    });
    const LINES = 100_000;
    let pulled = 0;
    const input = Readable.from(
      (function* () {
        for (let i = 1; i <= LINES; i++) {
          pulled++;
          yield `{"n":${i}}`;
        }
      })(),
    );
    const answer = (n: number): string => `${JSON.stringify({ line: n, event_id: null, rejected: 'invalid_input', message: 'a line must be a JSON object' })}\n`;
    let processed = 0;
    let maxQueued = 0;
    const loop = (async () => {
      for await (const line of output.paced(input as AsyncIterable<string>)) {
        processed++;
        output.write(answer(processed));
        maxQueued = Math.max(maxQueued, output.queuedBytes);
        expect(line).toBe(`{"n":${processed}}`);
      }
    })();
    await firstPause;
    // The loop is now waiting for the output: let every pending microtask and I/O callback run, and
    // nothing more is read.
    await new Promise((r) => setImmediate(r));
    const processedWhilePaused = processed;
    expect(processedWhilePaused).toBeLessThan(LINES);
    expect(output.queuedBytes).toBeLessThanOrEqual(pauseBytes + answer(LINES).length);
    // The input source is not read ahead beyond a stream buffer (Readable.from: 16 objects).
    expect(pulled - processed).toBeLessThanOrEqual(32);
    // Answers of events already in flight still come while input waits: capped, the rest dropped.
    for (let i = 0; i < 5_000; i++) output.write(answer(LINES + i));
    expect(output.queuedBytes).toBeLessThanOrEqual(maxBytes);
    expect(output.dropped).toBeGreaterThan(0);
    expect(drops.at(-1)).toBe(output.dropped);
    expect(processed).toBe(processedWhilePaused);
    // The reader comes back: the stream drains and input resumes to its end.
    w.release();
    await loop;
    expect(processed).toBe(LINES);
    expect(maxQueued).toBeLessThanOrEqual(maxBytes);
    expect(pauses[0]?.[0]).toBe(true);
    expect(pauses.some(([p]) => !p)).toBe(true);
    expect(w.taken()).toBeGreaterThan(0);
  });
});

describe('edgeplane agent with a stdout nobody reads', () => {
  let broker: TestBroker;
  beforeAll(async () => {
    broker = await startTestBroker();
  });
  afterAll(async () => {
    await broker.close();
  });

  it('stops reading stdin once its stdout is full, holding no more than the pause mark; answers every line once the reader reads', async () => {
    const child = spawn(process.execPath, [BIN, 'agent', '--url', broker.url, '--tower-id', 'T-bp', '--password', 'x', '--log-level', 'debug', '--log-format', 'json', '--decision-timeout-ms', '2000'], {
      env: { ...process.env, EDGEPLANE_RUN: 'source' },
    });
    const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // stdout: not read (paused) until the test says so.
    child.stdout.pause();
    const logs: Array<Record<string, unknown>> = [];
    let partial = '';
    let onPaused: (log: Record<string, unknown>) => void = () => {};
    child.stderr.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        const log = jsonLine(l);
        if (!log) continue;
        logs.push(log);
        if (log.event === 'output_paused') onPaused(log);
      }
    });
    const paused = new Promise<Record<string, unknown>>((resolve) => (onPaused = resolve));

    // 150,000 lines of ~200 bytes (30 MB), each answered at once (not an object: invalid_input, ~90 bytes).
    const LINES = 150_000;
    const line = `[${'1,'.repeat(99)}1]\n`;
    const input = Buffer.from(line.repeat(LINES));
    child.stdin.write(input);
    // Without the bound the agent reads all of it (its stdout queue growing to ~14 MB) and stdin drains.
    const drained = once(child.stdin, 'drain').then(() => 'all input read' as const);
    const first = await Promise.race([paused.then(() => 'paused' as const), drained, exit.then((c) => `exited ${c}` as const)]);
    expect(first).toBe('paused');
    const pausedLog = (await paused) as { queued_bytes: number };
    expect(pausedLog.queued_bytes).toBeGreaterThanOrEqual(OUTPUT_PAUSE_BYTES);
    expect(pausedLog.queued_bytes).toBeLessThan(OUTPUT_PAUSE_BYTES + 1024);
    // It stopped reading: almost all of the input is still waiting on this side of the pipe.
    expect(child.stdin.writableLength).toBeGreaterThan(input.length - 2 * 1024 * 1024);

    // The reader reads: every line is answered exactly once, and the agent exits 0 at end of input.
    const seen = new Uint8Array(LINES + 1);
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      const parts = (out + d.toString()).split('\n');
      out = parts.pop() ?? '';
      for (const p of parts) {
        const a = jsonLine(p) as { line: number; rejected: string };
        expect(a.rejected).toBe('invalid_input');
        seen[a.line]!++;
      }
    });
    child.stdout.resume();
    child.stdin.end();
    expect(await exit).toBe(0);
    expect(seen.subarray(1).every((n) => n === 1)).toBe(true);
    // Paused again and again while the reader caught up, never holding much more than the mark.
    const pauseLogs = logs.filter((l) => l.event === 'output_paused') as Array<{ queued_bytes: number }>;
    expect(Math.max(...pauseLogs.map((l) => l.queued_bytes))).toBeLessThan(OUTPUT_PAUSE_BYTES + 1024);
    expect(logs.some((l) => l.event === 'answers_dropped')).toBe(false);
  }, 60_000);
});

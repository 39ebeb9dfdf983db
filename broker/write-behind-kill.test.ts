/**
 * The session store answers session-queue writes before they are written (write-behind-level.ts);
 * a publish must still call back only once what it queued is on disk. A real process publishes to
 * an offline persistent session and kills itself with SIGKILL inside the callback of its last
 * publish; the store reopened afterwards holds every message, once.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { levelBackends } from './backends-level.js';

const CHILD = fileURLToPath(new URL('./fixtures/publish-then-die.ts', import.meta.url));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-wbk-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('every QoS 1 message whose publish called back survives a kill -9 in that callback', async () => {
  const location = join(dir, 'broker-sessions');
  const count = 200;
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, location, String(count)], { stdio: ['ignore', 'inherit', 'inherit'] });
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, sig) => resolve(sig)));
  expect(signal).toBe('SIGKILL');

  const backends = levelBackends({ location });
  try {
    const persistence = (await backends.persistence()) as unknown as { outgoingStream(client: { id: string }): AsyncIterable<{ topic: string }> };
    const topics: string[] = [];
    for await (const packet of persistence.outgoingStream({ id: 'tower-1' })) topics.push(packet.topic);
    expect(topics).toEqual(Array.from({ length: count }, (_, i) => `down/${i}`));
  } finally {
    await backends.close();
  }
}, 30_000);

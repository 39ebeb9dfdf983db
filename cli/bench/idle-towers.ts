/**
 * Child process of the memory part: holds many idle towers connected to the control plane — real
 * EdgeAgents (persistent session, subscriptions, retained status, will), each its own MQTT
 * connection on loopback — so the control plane's RSS per connected idle tower can be read from
 * outside. Usage: idle-towers <mqtt-url> <towers.json>; then on stdin, one JSON command per line:
 * {"connect": n} brings the first n towers online and answers {"connected": n}; end of input
 * stops them all and exits.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';

const [, , url, file] = process.argv;
if (!url || !file) {
  process.stderr.write('usage: idle-towers <mqtt-url> <towers.json>\n');
  process.exit(2);
}
const towers = JSON.parse(readFileSync(file, 'utf8')) as Array<{ id: string; password: string }>;
const agents: EdgeAgent[] = [];
let errors = 0;
/** Connections opened at once: well under the broker's --mqtt-max-pending-connections. */
const CONCURRENCY = 100;

async function connect(n: number): Promise<void> {
  const from = agents.length;
  const want = Math.min(n, towers.length);
  for (let i = from; i < want; i += CONCURRENCY) {
    const batch = towers.slice(i, Math.min(want, i + CONCURRENCY)).map((t) => new EdgeAgent({ url: url!, towerId: t.id, password: t.password, connectTimeoutMs: 30_000 }));
    for (const a of batch) a.on('error', () => void errors++);
    await Promise.all(batch.map((a) => a.start()));
    agents.push(...batch);
  }
}

const lines = createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on('line', (line) => {
  const cmd = JSON.parse(line) as { connect?: number };
  queue = queue.then(async () => {
    if (cmd.connect !== undefined) {
      await connect(cmd.connect);
      process.stdout.write(JSON.stringify({ connected: agents.filter((a) => a.online).length, errors }) + '\n');
    }
  });
});
lines.on('close', () => {
  void queue.then(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    process.exit(0);
  });
});

/**
 * aedes-persistence's own abstract suite (aedes-persistence/abstract.js, the conformance tests
 * every aedes persistence ships with) run against our session backends as aedes 1.x uses them:
 * `testAsync`, i.e. `await setup(broker)` and promise-style calls. The LevelDB backend runs on
 * a temp directory, the Redis backend on the run's real redis-server with a unique prefix per
 * test (including our will-owner wrapper).
 *
 * The suite is written for node:test; `nodeTest` below hands it a vitest `it` with the part of
 * node:test's context it uses: `t.plan(n)` (checked after the test), `t.assert.*` (node:assert
 * in its default, non-strict mode, exactly as node:test's `t.assert`) and `t.diagnostic`.
 */
import legacyAssert from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import type { BrokerBackends, MessageEmitter, SessionPersistence } from './backends.js';
import { levelBackends } from './backends-level.js';
import { redisBackends } from './backends-redis.js';

interface NodeTestContext {
  plan(count: number): void;
  assert: typeof legacyAssert;
  diagnostic(message: string): void;
}

interface AbstractSuiteOptions {
  test: (name: string, fn: (t: NodeTestContext) => Promise<void> | void) => void;
  persistence: () => Promise<SessionPersistence>;
  buildEmitter: () => MessageEmitter;
  testAsync: true;
}

const require = createRequire(import.meta.url);
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: AbstractSuiteOptions) => void;

function nodeTest(name: string, fn: (t: NodeTestContext) => Promise<void> | void): void {
  it(name, async () => {
    let planned: number | null = null;
    let asserted = 0;
    const counted = new Proxy(legacyAssert, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          asserted++;
          return (value as (...a: unknown[]) => unknown)(...args);
        };
      },
    });
    await fn({ plan: (n) => (planned = n), assert: counted, diagnostic: () => {} });
    if (planned !== null) expect(asserted, `t.plan(${planned})`).toBe(planned);
  });
}

/**
 * The suite builds the emitter first, then the persistence, and finally destroys the
 * persistence: one backends instance serves each such triple, and the destroy closes all of it.
 */
function runSuite(newBackends: () => BrokerBackends): void {
  let current: BrokerBackends | null = null;
  abstractPersistence({
    test: nodeTest,
    testAsync: true,
    buildEmitter: () => {
      current = newBackends();
      return current.mq();
    },
    persistence: async () => {
      const backends = current!;
      const persistence = await backends.persistence();
      const destroy = persistence.destroy.bind(persistence);
      // As in Broker: aedes closes the emitter, then the backends destroy the persistence.
      persistence.destroy = async () => {
        persistence.destroy = destroy;
        await new Promise<void>((resolve) => backends.mq().close(() => resolve()));
        await backends.close();
      };
      return persistence;
    },
  });
}

describe('aedes-persistence abstract suite: LevelDB backend (embedded mode)', () => {
  let root: string;
  let n = 0;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeplane-level-contract-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  runSuite(() => levelBackends({ location: join(root, `db-${n++}`) }));
});

describeWithRedis('aedes-persistence abstract suite: Redis backend (distributed mode)', (url) => {
  runSuite(() => redisBackends({ url, prefix: uniquePrefix() }));
});

/** What aedes calls on wills (promise form), for the test below. */
interface WillCalls {
  putWill(client: { id: string }, packet: object): Promise<unknown>;
  delWill(client: { id: string; brokerId?: string }): Promise<unknown>;
  streamWill(brokers: Record<string, number>): AsyncIterable<{ clientId: string; brokerId: string }>;
}

describeWithRedis('Redis backend: the will a dead node left behind', (url) => {
  const opened: BrokerBackends[] = [];
  afterAll(async () => {
    for (const b of opened) {
      await new Promise<void>((resolve) => b.mq().close(() => resolve()));
      await b.close();
    }
  });

  async function node(prefix: string, id: string): Promise<WillCalls> {
    const backends = redisBackends({ url, prefix });
    opened.push(backends);
    const mq = backends.mq();
    const persistence = await backends.persistence();
    await persistence.setup({ id, mq, counter: 0, publish: mq.emit.bind(mq), subscribe: mq.on.bind(mq), unsubscribe: mq.removeListener.bind(mq) });
    return persistence as unknown as WillCalls;
  }

  it('is deleted when the client connects to another node, so no surviving node publishes it later', async () => {
    const prefix = uniquePrefix();
    const a = await node(prefix, 'broker-a');
    const b = await node(prefix, 'broker-b');
    const will = { cmd: 'publish', topic: 'towers/t1/status', payload: Buffer.from('offline'), qos: 1, retain: true };
    await a.putWill({ id: 'tower-t1' }, { ...will });
    // Node A dies with the tower connected. The tower reconnects to node B, whose CONNECT
    // handling (aedes connect.js storeWill) passes the Client itself: it has no brokerId.
    await b.delWill({ id: 'tower-t1' });
    await b.putWill({ id: 'tower-t1' }, { ...will });
    // aedes `_clearWills` on B publishes the wills of every broker not heart-beating: none left.
    const orphans: Array<{ clientId: string; brokerId: string }> = [];
    for await (const w of b.streamWill({ 'broker-b': Date.now() })) orphans.push(w);
    expect(orphans).toEqual([]);
    const all: string[] = [];
    for await (const w of b.streamWill({})) all.push(`${w.clientId}@${w.brokerId}`);
    expect(all).toEqual(['tower-t1@broker-b']);
  });
});

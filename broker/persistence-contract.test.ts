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

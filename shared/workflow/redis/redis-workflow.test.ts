/**
 * The workflow-state ports' contracts against their Redis adapters (and BullMQ), on the run's real
 * redis-server with a unique key prefix per test.
 */
import { afterAll } from 'vitest';
import { describeWithRedis, uniquePrefix } from '../../../test/support/redis.js';
import { createRedis } from '../../redis/connection.js';
import { BullJobQueues } from '../bullmq/job-queue.js';
import { describeJobQueueContract } from '../contract/job-queue.contract.js';
import { describeLeasesContract } from '../contract/leases.contract.js';
import { describeRateBudgetsContract } from '../contract/rate-budgets.contract.js';
import { describeRemediationStateContract } from '../contract/remediation-state.contract.js';
import { RedisLeases } from './leases.js';
import { RedisRateBudgets } from './rate-budgets.js';
import { RedisRemediationState } from './remediation-state.js';

describeWithRedis('Redis workflow adapters', (url) => {
  const redis = createRedis(url, { name: 'edgeplane-test' });
  afterAll(() => redis.quit());
  const noop = async () => {};

  describeRateBudgetsContract('redis', async () => ({ budgets: new RedisRateBudgets(redis, uniquePrefix()), cleanup: noop }));
  describeRemediationStateContract('redis', async () => ({ state: new RedisRemediationState(redis, uniquePrefix()), cleanup: noop }));
  describeLeasesContract('redis', async () => ({ leases: new RedisLeases(redis, uniquePrefix()), cleanup: noop }));
  describeJobQueueContract('bullmq', async () => {
    const prefix = uniquePrefix().replace(/:$/, '');
    const made: BullJobQueues[] = [];
    const make = () => {
      const q = new BullJobQueues({ url, prefix });
      made.push(q);
      return q;
    };
    const queues = make();
    return { queues, peer: make, cleanup: async () => void (await Promise.all(made.map((q) => q.close()))) };
  }, { shared: true });
});

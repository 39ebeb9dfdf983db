/** The workflow-state ports on Redis + BullMQ, for the distributed mode (see ../index.ts). */
import type { Redis } from 'ioredis';
import { BullJobQueues } from '../bullmq/job-queue.js';
import type { WorkflowPorts } from '../index.js';
import { RedisLeases } from './leases.js';
import { RedisRateBudgets } from './rate-budgets.js';
import { RedisRemediationState } from './remediation-state.js';

export interface RedisWorkflowOptions {
  url: string;
  /** The process' shared command connection (not a blocking one). */
  redis: Redis;
  /** Deployment key prefix, e.g. 'edgeplane:' (BullMQ gets it without the trailing ':'). */
  prefix: string;
  /** Takeover time of a job whose worker died. */
  lockDurationMs?: number;
  /** Shown in CLIENT LIST. */
  name: string;
}

export function redisWorkflow(o: RedisWorkflowOptions): WorkflowPorts {
  const queues = new BullJobQueues({
    url: o.url,
    prefix: o.prefix.replace(/:$/, ''),
    name: o.name,
    ...(o.lockDurationMs ? { lockDurationMs: o.lockDurationMs } : {}),
  });
  return {
    budgets: new RedisRateBudgets(o.redis, o.prefix),
    remediation: new RedisRemediationState(o.redis, o.prefix),
    leases: new RedisLeases(o.redis, o.prefix),
    queues,
    close: () => queues.close(),
  };
}

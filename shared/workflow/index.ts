/**
 * The workflow-state ports a process needs, built together: in-process for the embedded mode,
 * Redis/BullMQ for the distributed mode (redis/index.ts).
 */
import { InProcessJobQueues, type JobQueues } from './job-queue.js';
import { InProcessLeases, type Leases } from './leases.js';
import { InProcessRateBudgets, type RateBudgets } from './rate-budgets.js';
import { InProcessRemediationState, type InProcessRemediationStateOptions, type RemediationState } from './remediation-state.js';

export interface WorkflowPorts {
  budgets: RateBudgets;
  remediation: RemediationState;
  leases: Leases;
  queues: JobQueues;
  /** Closes queues and connections (after every component using them stopped). */
  close(): Promise<void>;
}

export function inProcessWorkflow(opts: { remediation?: InProcessRemediationStateOptions } = {}): WorkflowPorts {
  const queues = new InProcessJobQueues();
  return {
    budgets: new InProcessRateBudgets(),
    remediation: new InProcessRemediationState(opts.remediation),
    leases: new InProcessLeases(),
    queues,
    close: () => queues.close(),
  };
}

/** The workflow-state ports' contracts against their in-process adapters. */
import { describeJobQueueContract } from './contract/job-queue.contract.js';
import { describeLeasesContract } from './contract/leases.contract.js';
import { describeRateBudgetsContract } from './contract/rate-budgets.contract.js';
import { describeRemediationStateContract } from './contract/remediation-state.contract.js';
import { InProcessJobQueues } from './job-queue.js';
import { InProcessLeases } from './leases.js';
import { InProcessRateBudgets } from './rate-budgets.js';
import { InProcessRemediationState } from './remediation-state.js';

const noop = async () => {};

describeRateBudgetsContract('in-process', async () => ({ budgets: new InProcessRateBudgets(), cleanup: noop }));
describeRemediationStateContract('in-process', async () => ({ state: new InProcessRemediationState(), cleanup: noop }));
describeLeasesContract('in-process', async () => ({ leases: new InProcessLeases(), cleanup: noop }));
describeJobQueueContract('in-process', async () => {
  const queues = new InProcessJobQueues();
  return { queues, cleanup: () => queues.close() };
}, { shared: false });

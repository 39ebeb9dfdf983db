/**
 * A WorkerContext for tests: the real store and bus the test made, in-process workflow ports, and
 * a command service that publishes through the test's downlink (processing its queue in-process).
 */
import type { Bus } from '../shared/bus.js';
import { CommandService } from '../shared/commands/command-service.js';
import { createIdFactory, type IdFactory } from '../shared/ids.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { Counters } from '../shared/metrics.js';
import type { Downlink } from '../shared/mqtt/transport.js';
import type { Store } from '../shared/store/port.js';
import { inProcessWorkflow, type WorkflowPorts } from '../shared/workflow/index.js';
import { InProcessJobQueues } from '../shared/workflow/job-queue.js';
import type { WorkerContext } from './context.js';

export interface TestWorkerContextOptions {
  store: Store;
  bus: Bus;
  downlink: Downlink;
  counters?: Counters;
  logger?: Logger;
  now?: () => number;
  newId?: IdFactory;
  workflow?: WorkflowPorts;
  commandTtlS?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
}

export interface TestWorkerContext extends WorkerContext {
  workflow: WorkflowPorts;
  /** Resolves once the queued work (command sends, acks…) caused so far has run. */
  settle(): Promise<void>;
  /** Stops the command service and closes the workflow ports (the store and bus are the test's). */
  close(): Promise<void>;
}

export function testWorkerContext(o: TestWorkerContextOptions): TestWorkerContext {
  const counters = o.counters ?? new Counters();
  const now = o.now ?? Date.now;
  const newId = o.newId ?? createIdFactory();
  const workflow = o.workflow ?? inProcessWorkflow();
  const commands = new CommandService(
    { store: o.store, bus: o.bus, queues: workflow.queues, counters, now, newId },
    { ttlS: o.commandTtlS ?? 3600, retryMinMs: o.retryMinMs ?? 1000, retryMaxMs: o.retryMaxMs ?? 60_000 },
  );
  commands.startProcessing(o.downlink);
  return {
    store: o.store,
    bus: o.bus,
    downlink: o.downlink,
    counters,
    logger: o.logger ?? silentLogger(),
    now,
    newId,
    commands,
    budgets: workflow.budgets,
    remediationState: workflow.remediation,
    leases: workflow.leases,
    processId: 'test-worker',
    workflow,
    settle: () => (workflow.queues instanceof InProcessJobQueues ? workflow.queues.idle() : Promise.resolve()),
    close: async () => {
      await commands.stop();
      await workflow.close();
    },
  };
}

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
import type { RuleInput, Store } from '../shared/store/port.js';
import type { PolicyRule, Tenant } from '../shared/domain.js';
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

/**
 * A tenant (on `plan_id`, if given) whose one user owns `device` and holds the one role whose
 * policy ("dlp", high) denies Dropbox uploads, the rule with `rule`'s remediation and escalation.
 */
export async function seedUploadDenyTenant(
  store: Store,
  o: { name: string; device: string; plan_id?: string; rule?: Pick<RuleInput, 'remediation' | 'escalation'> },
): Promise<{ tenant: Tenant; rule: PolicyRule; device: string }> {
  const tenant = await store.tenants.create({ name: o.name, ...(o.plan_id !== undefined && { plan_id: o.plan_id }) });
  await store.apps.create(tenant.id, { key: 'dropbox', name: 'Dropbox' });
  await store.actions.create(tenant.id, { key: 'upload_file', name: 'Upload' });
  const user = await store.users.create(tenant.id, { name: 'u' });
  const role = await store.roles.create(tenant.id, { name: 'r' });
  const policy = await store.policies.create(tenant.id, { name: 'dlp', severity: 'high' });
  await store.userRoles.assign(tenant.id, user.id, role.id);
  await store.rolePolicies.assign(tenant.id, role.id, policy.id);
  const rule = await store.rules.create(tenant.id, { policy_id: policy.id, app: 'dropbox', action: 'upload_file', permission: 'deny', ...o.rule });
  await store.devices.create(tenant.id, { id: o.device, name: 'phone', user_id: user.id });
  return { tenant, rule, device: o.device };
}

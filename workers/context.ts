import type { Bus } from '../shared/bus.js';
import type { CommandService } from '../shared/commands/command-service.js';
import type { IdFactory } from '../shared/ids.js';
import type { Logger } from '../shared/logger.js';
import type { Counters } from '../shared/metrics.js';
import type { Downlink, UplinkMessage } from '../shared/mqtt/transport.js';
import type { Store } from '../shared/store/port.js';
import type { StoreFaults } from '../shared/store/store-faults.js';
import type { Leases } from '../shared/workflow/leases.js';
import type { RateBudgets } from '../shared/workflow/rate-budgets.js';
import type { RemediationState } from '../shared/workflow/remediation-state.js';

/** What every worker component gets from the composition root. */
export interface WorkerContext {
  store: Store;
  bus: Bus;
  downlink: Downlink;
  counters: Counters;
  logger: Logger;
  now: () => number;
  newId: IdFactory;
  /** The one owner of the command lifecycle (shared with the API). */
  commands: CommandService;
  /** Workflow state shared by every worker of the deployment (in-process when embedded). */
  budgets: RateBudgets;
  remediationState: RemediationState;
  leases: Leases;
  /** This process, for lease ownership (e.g. `worker-<host>-<pid>`). */
  processId: string;
  /** Told when usage is stored, which ends a store-full episode (shared/store/store-faults.ts). */
  storeFaults?: StoreFaults;
}

/**
 * Bad input from the field is dropped and counted per tower, never thrown: one broken tower must
 * not disturb the others. Logged at warn so operators can find the offender.
 */
export function dropUplink(ctx: WorkerContext, msg: UplinkMessage, reason: string, detail?: string): void {
  ctx.counters.inc('uplink_dropped_total', { tower: msg.tower_id, kind: msg.parsed.kind, reason });
  ctx.logger.warn({ tower_id: msg.tower_id, topic: msg.topic, reason, detail }, 'uplink message dropped');
}

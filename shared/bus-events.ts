/**
 * The events of the bus (shared/bus.ts) and their runtime schemas. A payload that arrives from
 * another process is parsed with its schema before any listener sees it, like every other
 * boundary (MQTT payloads, job data).
 */
import { z } from 'zod';
import type { Alert, AlertEvent, CommandRecord, DiscoveredDevice, Tower, UsageRecord } from './domain.js';
import { AlertEventSchema, AlertSchema, CommandRecordSchema, DiscoveredDeviceSchema, TowerSchema, UsageRecordSchema } from './schemas/records.js';
import type { PolicyChangeScope } from './store/port.js';

export interface AlertStepEvent {
  tenant_id: string;
  alert: Alert;
  step: AlertEvent;
}

/** The bus event announcing each alert workflow step kind. */
export const ALERT_STEP_EVENTS = {
  acknowledged: 'alert.acknowledged',
  assigned: 'alert.assigned',
  unassigned: 'alert.assigned',
  resolved: 'alert.resolved',
} as const satisfies Record<AlertEvent['kind'], keyof BusEvents>;

export interface BusEvents {
  /** A committed change bumped the tenant's policy version: recompile its index. */
  'policy.changed': { tenant_id: string; version: number; scope?: PolicyChangeScope };
  /** A tower's first event of the tenant was stored by a process that does not publish bundles: the publisher serves the tower. */
  'bundle.serve': { tenant_id: string; tower_id: string };
  /** Usage events were decided and stored (only first deliveries, never redeliveries). */
  'usage.decided': { tenant_id: string; tower_id: string; records: UsageRecord[] };
  'alert.opened': { tenant_id: string; alert: Alert };
  'alert.updated': { tenant_id: string; alert: Alert };
  /** Alert workflow steps (API): the alert after the step, and the step as recorded in its history. */
  'alert.acknowledged': AlertStepEvent;
  /** Assigned or unassigned (step.kind says which; alert.assigned_to is null after an unassign). */
  'alert.assigned': AlertStepEvent;
  'alert.resolved': AlertStepEvent;
  'device.discovered': { tenant_id: string | null; device: DiscoveredDevice };
  'tower.status': { tower: Tower };
  /** A command was created or moved along its lifecycle (pending → delivered → applied|failed|expired). */
  'command.updated': { tenant_id: string; command: CommandRecord };
  /** A tower credential was revoked: brokers must drop its live sessions. */
  'credential.revoked': { tower_id: string; credential_id: string };
  /**
   * A console account's sessions ended (role changed, disabled, deleted, password changed): every
   * process closes what the account has open (API feeds, MQTT console sessions). Access tokens it
   * holds are refused by their session version at their next request anyway.
   */
  'console-user.revoked': { user_id: string; tenant_id: string | null; reason: ConsoleUserRevokedReason };
  /**
   * One sign-in of a console account ended (signed out: its refresh-token family `session_id` was
   * revoked): every process closes what that sign-in's access tokens have open (API feeds, MQTT
   * console sessions), and nothing of the account's other sign-ins. The store refuses those tokens
   * anyway (guard, periodic re-checks), so a lost announcement delays the closing, never skips it.
   */
  'console-session.ended': { user_id: string; session_id: string };
  /** A tenant API key was revoked: every process closes what it has open with the key (feeds). */
  'api-key.revoked': { key_id: string; tenant_id: string };
  /** A tower was deleted: brokers must drop its live sessions and refuse it from now on. */
  'tower.deleted': { tower_id: string };
  /**
   * Its carrier's feed retired a tower: brokers drop its live sessions (the store refuses its next
   * CONNECT; unlike a deletion, upserting it again brings it back).
   */
  'tower.retired': { tower_id: string };
  /** A carrier's feed credential was revoked: brokers drop the MQTT sessions opened with it. */
  'carrier-credential.revoked': { carrier_id: string; credential_id: string };
}

export const CONSOLE_USER_REVOKED_REASONS = ['role_changed', 'disabled', 'deleted', 'password_changed'] as const;
export type ConsoleUserRevokedReason = (typeof CONSOLE_USER_REVOKED_REASONS)[number];
const AlertStepEventSchema = z.object({ tenant_id: z.string(), alert: AlertSchema, step: AlertEventSchema });

export const BUS_EVENT_SCHEMAS: { [K in keyof BusEvents]: z.ZodType<BusEvents[K]> } = {
  // No scope (a process of an earlier release): treated as 'inventory'.
  'policy.changed': z.object({ tenant_id: z.string(), version: z.number().int(), scope: z.enum(['rules', 'inventory']).optional() }),
  'bundle.serve': z.object({ tenant_id: z.string(), tower_id: z.string() }),
  'usage.decided': z.object({ tenant_id: z.string(), tower_id: z.string(), records: z.array(UsageRecordSchema) }),
  'alert.opened': z.object({ tenant_id: z.string(), alert: AlertSchema }),
  'alert.updated': z.object({ tenant_id: z.string(), alert: AlertSchema }),
  'alert.acknowledged': AlertStepEventSchema,
  'alert.assigned': AlertStepEventSchema,
  'alert.resolved': AlertStepEventSchema,
  'device.discovered': z.object({ tenant_id: z.string().nullable(), device: DiscoveredDeviceSchema }),
  'tower.status': z.object({ tower: TowerSchema }),
  'command.updated': z.object({ tenant_id: z.string(), command: CommandRecordSchema }),
  'credential.revoked': z.object({ tower_id: z.string(), credential_id: z.string() }),
  'console-user.revoked': z.object({
    user_id: z.string(),
    tenant_id: z.string().nullable(),
    reason: z.enum(CONSOLE_USER_REVOKED_REASONS),
  }),
  'console-session.ended': z.object({ user_id: z.string(), session_id: z.string() }),
  'api-key.revoked': z.object({ key_id: z.string(), tenant_id: z.string() }),
  'tower.deleted': z.object({ tower_id: z.string() }),
  'tower.retired': z.object({ tower_id: z.string() }),
  'carrier-credential.revoked': z.object({ carrier_id: z.string(), credential_id: z.string() }),
};

export const BUS_EVENT_NAMES = Object.keys(BUS_EVENT_SCHEMAS) as Array<keyof BusEvents>;

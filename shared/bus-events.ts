/**
 * The events of the bus (shared/bus.ts) and their runtime schemas. A payload that arrives from
 * another process is parsed with its schema before any listener sees it, like every other
 * boundary (MQTT payloads, job data).
 */
import { z } from 'zod';
import type { Alert, CommandRecord, DiscoveredDevice, Tower, UsageRecord } from './domain.js';
import { AlertSchema, CommandRecordSchema, DiscoveredDeviceSchema, TowerSchema, UsageRecordSchema } from './schemas/records.js';

export interface BusEvents {
  /** A committed change bumped the tenant's policy version: recompile its index. */
  'policy.changed': { tenant_id: string; version: number };
  /** Usage events were decided and stored (only first deliveries, never redeliveries). */
  'usage.decided': { tenant_id: string; tower_id: string; records: UsageRecord[] };
  'alert.opened': { tenant_id: string; alert: Alert };
  'alert.updated': { tenant_id: string; alert: Alert };
  'device.discovered': { tenant_id: string | null; device: DiscoveredDevice };
  'tower.status': { tower: Tower };
  /** A command was created or moved along its lifecycle (pending → delivered → applied|failed|expired). */
  'command.updated': { tenant_id: string; command: CommandRecord };
  /** A tower credential was revoked: brokers must drop its live sessions. */
  'credential.revoked': { tower_id: string; credential_id: string };
  /** A tower was deleted: brokers must drop its live sessions and refuse it from now on. */
  'tower.deleted': { tower_id: string };
  /**
   * A console user was disabled, deleted or had its sessions revoked: brokers close its live
   * MQTT sessions and refuse access tokens issued before now.
   */
  'console-user.revoked': { user_id: string; tenant_id: string | null };
}

export const BUS_EVENT_SCHEMAS: { [K in keyof BusEvents]: z.ZodType<BusEvents[K]> } = {
  'policy.changed': z.object({ tenant_id: z.string(), version: z.number().int() }),
  'usage.decided': z.object({ tenant_id: z.string(), tower_id: z.string(), records: z.array(UsageRecordSchema) }),
  'alert.opened': z.object({ tenant_id: z.string(), alert: AlertSchema }),
  'alert.updated': z.object({ tenant_id: z.string(), alert: AlertSchema }),
  'device.discovered': z.object({ tenant_id: z.string().nullable(), device: DiscoveredDeviceSchema }),
  'tower.status': z.object({ tower: TowerSchema }),
  'command.updated': z.object({ tenant_id: z.string(), command: CommandRecordSchema }),
  'credential.revoked': z.object({ tower_id: z.string(), credential_id: z.string() }),
  'tower.deleted': z.object({ tower_id: z.string() }),
  'console-user.revoked': z.object({ user_id: z.string(), tenant_id: z.string().nullable() }),
};

export const BUS_EVENT_NAMES = Object.keys(BUS_EVENT_SCHEMAS) as Array<keyof BusEvents>;

/**
 * How accounting records fold into device sessions and per-device / per-tower totals. Pure, so
 * the SQLite and MongoDB adapters apply exactly the same rules inside their transactions.
 *
 * Records may arrive out of order (a retransmitted Interim-Update after the Stop) and octet
 * counters are cumulative per session [RFC 2866 §5.3, §5.4], so a session keeps the largest
 * counters it has seen, never goes back from stopped to active, and totals move by the change
 * of a session's counters (never by a record's absolute value, which would count twice).
 */
import type { DeviceSession } from '../../domain.js';
import type { AccountingRecord } from '../../mqtt/session-payloads.js';

export interface TotalsDelta {
  sessions: number;
  active: number;
  input_octets: number;
  output_octets: number;
  last_update_at: number;
}

export function foldAccounting(
  existing: DeviceSession | null,
  record: AccountingRecord,
  ctx: { id: string; tenant_id: string; tower_id: string },
): { session: DeviceSession; delta: TotalsDelta } {
  const stop = record.status === 'stop';
  if (!existing) {
    const session: DeviceSession = {
      id: ctx.id,
      tenant_id: ctx.tenant_id,
      tower_id: ctx.tower_id,
      device_id: record.device_id,
      session_id: record.session_id,
      status: stop ? 'stopped' : 'active',
      started_at: record.status === 'start' ? record.ts : null,
      last_update_at: record.ts,
      stopped_at: stop ? record.ts : null,
      input_octets: record.input_octets,
      output_octets: record.output_octets,
      session_time_s: record.session_time_s ?? null,
      terminate_cause: record.terminate_cause ?? null,
      records: 1,
    };
    return {
      session,
      delta: {
        sessions: 1,
        active: stop ? 0 : 1,
        input_octets: session.input_octets,
        output_octets: session.output_octets,
        last_update_at: record.ts,
      },
    };
  }
  const session: DeviceSession = {
    ...existing,
    status: stop ? 'stopped' : existing.status,
    started_at: record.status === 'start' ? Math.min(existing.started_at ?? record.ts, record.ts) : existing.started_at,
    last_update_at: Math.max(existing.last_update_at, record.ts),
    stopped_at: stop ? record.ts : existing.stopped_at,
    input_octets: Math.max(existing.input_octets, record.input_octets),
    output_octets: Math.max(existing.output_octets, record.output_octets),
    session_time_s: maxOrNull(existing.session_time_s, record.session_time_s ?? null),
    terminate_cause: record.terminate_cause ?? existing.terminate_cause,
    records: existing.records + 1,
  };
  return {
    session,
    delta: {
      sessions: 0,
      active: existing.status === 'active' && session.status === 'stopped' ? -1 : 0,
      input_octets: session.input_octets - existing.input_octets,
      output_octets: session.output_octets - existing.output_octets,
      last_update_at: session.last_update_at,
    },
  };
}

function maxOrNull(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}

/** A session ended by its equipment's restart (Accounting-On/Off): stopped, counters kept. */
export function stopByReset(existing: DeviceSession, at: number, terminateCause: string): { session: DeviceSession; delta: TotalsDelta } {
  const session: DeviceSession = {
    ...existing,
    status: 'stopped',
    stopped_at: at,
    last_update_at: Math.max(existing.last_update_at, at),
    terminate_cause: terminateCause,
  };
  return { session, delta: { sessions: 0, active: -1, input_octets: 0, output_octets: 0, last_update_at: session.last_update_at } };
}

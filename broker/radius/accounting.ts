/**
 * From an authenticated Accounting-Request to an accounting record (session-payloads.ts):
 * Acct-Status-Type → status, Calling-Station-Id (else User-Name) → device, octets with their
 * Gigawords → bytes, Event-Timestamp (else arrival − Acct-Delay-Time) → time, and the key that
 * makes a retransmission recognisable.
 */
import { TOPIC_ID_RE } from '../../shared/ids.js';
import type { AccountingRecord, AccountingStatus } from '../../shared/mqtt/session-payloads.js';
import { ATTR, attrInt, attrText, MalformedPacket, STATUS_TYPE, terminateCauseName, type RadiusPacket } from './codec.js';

const MAC_RE = /^([0-9A-Fa-f]{2})[:.-]?([0-9A-Fa-f]{2})[:.-]?([0-9A-Fa-f]{2})[:.-]?([0-9A-Fa-f]{2})[:.-]?([0-9A-Fa-f]{2})[:.-]?([0-9A-Fa-f]{2})$/;
const DOTTED_MAC_RE = /^([0-9A-Fa-f]{4})\.([0-9A-Fa-f]{4})\.([0-9A-Fa-f]{4})$/;
const BARE_DIGITS_RE = /^[0-9]{12}$/;

/**
 * The device id a station identifier names. MAC addresses in any common notation become the
 * RFC 3580 §3.21 form ("00-10-A4-23-19-C0"), so one handset is one device whichever NAS reports
 * it (a bare MAC must hold a hex letter: twelve decimal digits are a phone number); an E.164
 * number loses its '+'; anything else is used as is when it is a valid device id.
 */
export function deviceIdOf(station: string | undefined): string | undefined {
  if (station === undefined) return undefined;
  const s = station.trim();
  // Twelve decimal digits without separators are a phone number (a UK MSISDN is 44 + 10 digits;
  // 3GPP NASes send MSISDNs as bare digits), not a MAC: MACs come with separators or with hex
  // letters in all but 0.4 % of cases.
  if (BARE_DIGITS_RE.test(s)) return s;
  const dotted = DOTTED_MAC_RE.exec(s);
  const hex = dotted ? dotted.slice(1).join('') : null;
  const mac = hex ? MAC_RE.exec(hex) : MAC_RE.exec(s);
  if (mac) return mac.slice(1, 7).join('-').toUpperCase();
  const id = s.startsWith('+') ? s.slice(1) : s;
  return TOPIC_ID_RE.test(id) ? id : undefined;
}

export type AccountingRequest =
  | { kind: 'record'; record: AccountingRecord }
  /** Accounting-On/Off: the NAS (re)started or stops; answered, nothing to record per session. */
  | { kind: 'control'; status: 'accounting-on' | 'accounting-off'; at: number }
  | { kind: 'unusable'; reason: 'unsupported_status' | 'no_session_id' | 'no_device' };

const STATUS: Record<number, AccountingStatus> = {
  [STATUS_TYPE.START]: 'start',
  [STATUS_TYPE.STOP]: 'stop',
  [STATUS_TYPE.INTERIM_UPDATE]: 'interim',
};

/**
 * Throws MalformedPacket for integer attributes of the wrong size. `nas` (the RADIUS client's id)
 * scopes the record's key: an Acct-Session-Id is the NAS's own name for a session, and two NASes
 * of one tower may use the same one (records are stored once per tower and key, and sessions
 * are kept per tower, NAS and Acct-Session-Id).
 */
export function readAccountingRequest(p: RadiusPacket, receivedAt: number, nas?: string): AccountingRequest {
  const statusType = attrInt(p, ATTR.ACCT_STATUS_TYPE);
  if (statusType === STATUS_TYPE.ACCOUNTING_ON || statusType === STATUS_TYPE.ACCOUNTING_OFF) {
    const eventTs = attrInt(p, ATTR.EVENT_TIMESTAMP);
    const delay = attrInt(p, ATTR.ACCT_DELAY_TIME) ?? 0;
    const at = eventTs !== undefined ? eventTs * 1000 : Math.max(0, receivedAt - delay * 1000);
    return { kind: 'control', status: statusType === STATUS_TYPE.ACCOUNTING_ON ? 'accounting-on' : 'accounting-off', at };
  }
  const status = statusType === undefined ? undefined : STATUS[statusType];
  if (status === undefined) return { kind: 'unusable', reason: 'unsupported_status' };
  const sessionId = attrText(p, ATTR.ACCT_SESSION_ID);
  if (sessionId === undefined || sessionId.length === 0 || sessionId.length > 253) return { kind: 'unusable', reason: 'no_session_id' };
  const deviceId = deviceIdOf(attrText(p, ATTR.CALLING_STATION_ID)) ?? deviceIdOf(attrText(p, ATTR.USER_NAME));
  if (deviceId === undefined) return { kind: 'unusable', reason: 'no_device' };

  const octets = (low: number, high: number) => (attrInt(p, high) ?? 0) * 2 ** 32 + (attrInt(p, low) ?? 0);
  const input = octets(ATTR.ACCT_INPUT_OCTETS, ATTR.ACCT_INPUT_GIGAWORDS);
  const output = octets(ATTR.ACCT_OUTPUT_OCTETS, ATTR.ACCT_OUTPUT_GIGAWORDS);
  // Past 2^53 (2^21 Gigawords, 8 PiB) a number is no longer exact and the pipeline's schema refuses
  // the record: answering it would acknowledge what is never stored.
  if (input > Number.MAX_SAFE_INTEGER || output > Number.MAX_SAFE_INTEGER) throw new MalformedPacket('octet counters beyond 2^53');
  const eventTs = attrInt(p, ATTR.EVENT_TIMESTAMP);
  const delay = attrInt(p, ATTR.ACCT_DELAY_TIME) ?? 0;
  const sessionTime = attrInt(p, ATTR.ACCT_SESSION_TIME);
  const cause = attrInt(p, ATTR.ACCT_TERMINATE_CAUSE);
  // [RFC 2866 §5.2] a retransmission may carry a new Acct-Delay-Time (hence a new Identifier and
  // authenticator), so the key is built from what stays the same: the session, the status, when
  // the event happened, and the counters and session time it reports. Event-Timestamp has 1 s
  // resolution: two Interim-Updates of one second (a NAS's interval timer and a rate change, say)
  // are told apart by their counters; a retransmission repeats them.
  const counters = `t${sessionTime ?? ''}:${input}:${output}`;
  const when = eventTs !== undefined ? `e${eventTs}:${counters}` : counters;
  const record: AccountingRecord = {
    key: `${nas === undefined ? '' : `${nas}|`}${sessionId}|${status}|${when}`,
    session_id: sessionId,
    ...(nas !== undefined && { nas }),
    status,
    device_id: deviceId,
    ts: eventTs !== undefined ? eventTs * 1000 : Math.max(0, receivedAt - delay * 1000),
    input_octets: input,
    output_octets: output,
    ...(sessionTime !== undefined && { session_time_s: sessionTime }),
    ...(cause !== undefined && { terminate_cause: terminateCauseName(cause) }),
  };
  if (record.key.length > 512) throw new MalformedPacket('Acct-Session-Id too long');
  return { kind: 'record', record };
}

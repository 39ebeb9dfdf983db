/**
 * Decodes a DecisionBatch from the downlink: exactly what `decodePayload(DecisionBatchSchema, …)`
 * answers (the zod schema stays the authority), without running zod on the shape the cloud
 * sends. A tower decodes one DecisionBatch per usage batch it sent; zod's parse (a new object per
 * decision, its issue bookkeeping) was ~4 % of the bench's load generator (20 agents, bench (b)),
 * more than JSON.parse itself.
 *
 * The fast path accepts a parsed value only when it is exactly the schema's shape: the same keys in
 * the schema's order and nothing else, every field passing the same check zod applies (or a
 * stricter one). zod's output for such a value is a copy of it, so the parsed value itself is the
 * answer. Anything else — another key order, an extra or missing key, a doubtful field — goes
 * through zod, which then accepts (the same output) or rejects (the same error).
 */
import { TOPIC_ID_RE, ULID_RE } from '../shared/ids.js';
import {
  DecisionBatchSchema,
  DecisionReasonSchema,
  DecisionSchema,
  decodePayload,
  EffectSchema,
  RejectReasonSchema,
  SCHEMA_VERSION,
  SeveritySchema,
  type DecisionBatch,
} from '../shared/mqtt/payloads.js';

type Check = (v: unknown) => boolean;

const ulid: Check = (v) => typeof v === 'string' && ULID_RE.test(v);
const topicId: Check = (v) => typeof v === 'string' && TOPIC_ID_RE.test(v);
/** z.number().int().nonnegative(), or stricter (safe integers only). */
const count: Check = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const stringOrNull: Check = (v) => v === null || typeof v === 'string';
function oneOf(values: readonly string[], orNull = false): Check {
  const allowed = new Set<unknown>(values);
  return (v) => (orNull && v === null) || allowed.has(v);
}

interface Shape {
  keys: string[];
  checks: Record<string, Check>;
}

/** The checks, keyed like the schema; `shapeOf` refuses to load if the two ever differ. */
function shapeOf(schema: { shape: Record<string, unknown> }, checks: Record<string, Check>, name: string): Shape {
  const keys = Object.keys(schema.shape);
  const mine = Object.keys(checks);
  if (keys.length !== mine.length || keys.some((k, i) => k !== mine[i])) {
    throw new Error(`decision-batch-decoder: ${name} checks (${mine.join(', ')}) do not match the schema (${keys.join(', ')})`);
  }
  return { keys, checks };
}

const DECISION = shapeOf(
  DecisionSchema,
  {
    event_id: ulid,
    device_id: topicId,
    effect: oneOf(EffectSchema.options),
    reason: oneOf(DecisionReasonSchema.options),
    rule_id: stringOrNull,
    policy_id: stringOrNull,
    severity: oneOf(SeveritySchema.options, true),
  },
  'Decision',
);

const REJECTED = shapeOf(DecisionBatchSchema.shape.rejected.element, { event_id: ulid, reason: oneOf(RejectReasonSchema.options) }, 'rejected');

const arrayOf = (shape: Shape): Check => (v) => Array.isArray(v) && v.every((item) => exactly(item, shape));

const BATCH = shapeOf(
  DecisionBatchSchema,
  {
    v: (v) => v === SCHEMA_VERSION,
    id: ulid,
    batch_id: ulid,
    policy_version: count,
    decided_at: count,
    decisions: arrayOf(DECISION),
    rejected: arrayOf(REJECTED),
  },
  'DecisionBatch',
);

/** A plain object (as JSON.parse makes them) with exactly the shape's keys, in order, each passing. */
function exactly(value: unknown, shape: Shape): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) return false;
  const obj = value as Record<string, unknown>;
  let i = 0;
  for (const key in obj) {
    if (key !== shape.keys[i] || !Object.hasOwn(obj, key) || !shape.checks[key]!(obj[key])) return false;
    i++;
  }
  return i === shape.keys.length;
}

/** True when `value` is a DecisionBatch zod would return unchanged (see the file comment). */
export function isExactDecisionBatch(value: unknown): value is DecisionBatch {
  return exactly(value, BATCH);
}

export function decodeDecisionBatch(payload: Buffer): { ok: true; value: DecisionBatch } | { ok: false; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(payload.toString('utf8'));
  } catch {
    raw = undefined;
  }
  if (raw !== undefined && isExactDecisionBatch(raw)) return { ok: true, value: raw };
  // Everything else is zod's to accept or refuse, with its own error.
  return decodePayload(DecisionBatchSchema, payload);
}

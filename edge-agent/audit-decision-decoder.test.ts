/**
 * The agent decodes DecisionBatches without zod when the payload is exactly the schema's shape
 * (decision-batch-decoder.ts): its answer must be zod's answer for every payload, accepted or not.
 */
import { describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { DecisionBatchSchema, decodePayload } from '../shared/mqtt/payloads.js';
import { mulberry32 } from '../simulator/prng.js';
import { decodeDecisionBatch, isExactDecisionBatch } from './decision-batch-decoder.js';

const newId = createIdFactory(() => 1_760_000_000_000);

/** A batch as the control plane's usage processor builds it (same keys, same order). */
function cloudBatch(decisions = 3, rejected = 1): Record<string, unknown> {
  return {
    v: 1,
    id: newId(),
    batch_id: newId(),
    policy_version: 7,
    decided_at: 1_760_000_000_123,
    decisions: Array.from({ length: decisions }, (_, i) => ({
      event_id: newId(),
      device_id: `dev-${i}`,
      effect: i % 2 === 0 ? 'allow' : 'deny',
      reason: i % 2 === 0 ? 'default' : 'rule',
      rule_id: i % 2 === 0 ? null : 'r-1',
      policy_id: i % 2 === 0 ? null : 'p-1',
      severity: i % 2 === 0 ? null : 'high',
    })),
    rejected: Array.from({ length: rejected }, () => ({ event_id: newId(), reason: 'plan_rate_limited' })),
  };
}

/** Same ok, same error, and the same value down to its JSON text (key order included). */
function expectSameAsZod(payload: Buffer): void {
  const mine = decodeDecisionBatch(payload);
  const zod = decodePayload(DecisionBatchSchema, payload);
  expect(mine.ok).toBe(zod.ok);
  if (mine.ok && zod.ok) expect(JSON.stringify(mine.value)).toBe(JSON.stringify(zod.value));
  if (!mine.ok && !zod.ok) expect(mine.error).toBe(zod.error);
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Replacement values that probe each check: wrong types, edges of numbers, near-ULIDs. */
const ODD_VALUES: Json[] = [
  null, true, 0, -0, -1, 1.5, 2 ** 53, -(2 ** 53), 1e308, '', 'x', 'allow', 'deny', 'rule', 'blocked', 'low', 'critical',
  'plan_rate_limited', '01ARYZ6S41TSV4RRFFQ69G5FA', '01ARYZ6S41TSV4RRFFQ69G5FAVV', '01ARYZ6S41TSV4RRFFQ69G5FAI', 'a/b', 'dev+1', [], {}, [1], { v: 1 },
];

/** Every object and array inside `value`, with a way to replace or remove a key there. */
function containers(value: Json, out: Array<{ [k: string]: Json } | Json[]> = []): Array<{ [k: string]: Json } | Json[]> {
  if (value !== null && typeof value === 'object') {
    out.push(value);
    for (const v of Object.values(value)) containers(v, out);
  }
  return out;
}

function mutate(batch: Json, rnd: () => number): Json {
  const copy = JSON.parse(JSON.stringify(batch)) as Json;
  const all = containers(copy);
  const target = all[Math.floor(rnd() * all.length)]!;
  const keys = Object.keys(target);
  const key = keys[Math.floor(rnd() * keys.length)];
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const op = Math.floor(rnd() * 5);
  if (Array.isArray(target)) {
    if (op === 0) target.pop();
    else if (op === 1) target.push(pick(ODD_VALUES));
    else if (key !== undefined) target[Number(key)] = pick(ODD_VALUES);
    return copy;
  }
  if (op === 0 && key !== undefined) delete target[key];
  else if (op === 1) target[pick(['extra', 'v', '0', 'id', 'reason'])] = pick(ODD_VALUES);
  else if (op === 2 && key !== undefined) {
    // The same fields in another order.
    const value = target[key]!;
    delete target[key];
    target[key] = value;
  } else if (key !== undefined) target[key] = pick(ODD_VALUES);
  return copy;
}

describe('decodeDecisionBatch', () => {
  it("takes the fast path for the control plane's own batches, with zod's answer", () => {
    for (const [d, r] of [[0, 0], [1, 0], [3, 1], [100, 5]] as const) {
      const batch = cloudBatch(d, r);
      expect(isExactDecisionBatch(batch)).toBe(true);
      expectSameAsZod(Buffer.from(JSON.stringify(batch)));
    }
  });

  it('answers as zod does for thousands of damaged batches (types, bounds, keys, key order)', () => {
    const rnd = mulberry32(11);
    let fast = 0;
    let refused = 0;
    for (let i = 0; i < 5000; i++) {
      let value = cloudBatch(1 + (i % 3), i % 2) as Json;
      const rounds = 1 + Math.floor(rnd() * 3);
      for (let j = 0; j < rounds; j++) value = mutate(value, rnd);
      const payload = Buffer.from(JSON.stringify(value));
      expectSameAsZod(payload);
      if (isExactDecisionBatch(JSON.parse(payload.toString()))) fast++;
      if (!decodeDecisionBatch(payload).ok) refused++;
    }
    // The mutations exercise both sides: accepted on the fast path, and refused.
    expect(fast).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(1000);
  });

  it('leaves payloads that are not plain JSON objects to zod', () => {
    for (const text of ['', 'not json', 'null', '[]', '1', '"x"', '{"__proto__":{"v":1}}', JSON.stringify([cloudBatch()])]) {
      expectSameAsZod(Buffer.from(text));
    }
  });

  it('never passes a value zod would strip or reorder: the keys are exactly the schema keys', () => {
    const extra = { ...cloudBatch(), note: 'x' };
    expect(isExactDecisionBatch(extra)).toBe(false);
    const reordered = cloudBatch();
    const { v, ...rest } = reordered;
    expect(isExactDecisionBatch({ ...rest, v })).toBe(false);
    expectSameAsZod(Buffer.from(JSON.stringify({ ...rest, v })));
    expect(Object.keys(DecisionBatchSchema.shape)).toEqual(Object.keys(cloudBatch()));
  });
});

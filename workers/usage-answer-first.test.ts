/**
 * Answered first (usage-processor.ts): while the process has time to spare, a tower's own first
 * delivery of a usage batch is answered on its connection before the batch is stored, and the
 * acknowledgement still waits for the store. Busy, or for a resend (the PUBLISH's DUP flag), the
 * answer comes after the store, with the decision stored the first time. A batch delivered again
 * without DUP across a policy change is answered with the fresh decision and counted. Real SQLite
 * store and pipeline; the broker's reply is recorded (broker/answer-on-connection.test.ts covers
 * the wire).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../shared/bus.js';
import { createIdFactory } from '../shared/ids.js';
import type { Headroom } from '../shared/loop-headroom.js';
import { Counters } from '../shared/metrics.js';
import { DecisionBatchSchema, decodePayload, encodePayload, type DecisionBatch, type UsageBatch } from '../shared/mqtt/payloads.js';
import { parseTopic, topics } from '../shared/mqtt/topics.js';
import { isUplinkTopic, type Downlink, type UplinkMessage } from '../shared/mqtt/transport.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { Pipeline } from './pipeline.js';
import { seedUploadDenyTenant, testWorkerContext, type TestWorkerContext } from './test-support.js';

const newId = createIdFactory();

interface Reply {
  answer: DecisionBatch;
  beforeStored: boolean;
  /** Batches the store had committed when the answer was written. */
  committed: number;
}

describe('a usage batch answered before it is stored', () => {
  let dir: string;
  let store: SqliteStore;
  let bus: InProcessBus;
  let tenantId: string;
  let denyRule: string;
  let committed: number;
  let spare: boolean;
  const started: Array<{ pipeline: Pipeline; ctx: TestWorkerContext }> = [];
  /** Topics the worker published to through the downlink (bundles, and answers that could not go on the connection). */
  const downlinkSent: string[] = [];
  const downlink: Downlink = {
    publish: async (topic) => {
      downlinkSent.push(topic);
    },
  };
  const headroom: Headroom = { spare: () => spare };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-answer-first-'));
    bus = new InProcessBus();
    store = new SqliteStore({ file: join(dir, 'db.sqlite') });
    await store.init();
    committed = 0;
    spare = true;
    downlinkSent.length = 0;
    // Counts group commits as they complete, so a reply can tell whether its batch was stored.
    const recordBatches = store.usage.recordBatches.bind(store.usage);
    vi.spyOn(store.usage, 'recordBatches').mockImplementation(async (inputs) => {
      const results = await recordBatches(inputs);
      committed += inputs.length;
      return results;
    });
    await store.towers.create({ id: 'T1', name: 't1' });
    const seeded = await seedUploadDenyTenant(store, { name: 'acme', device: 'dev-1' });
    tenantId = seeded.tenant.id;
    denyRule = seeded.rule.id;
  });

  afterEach(async () => {
    for (const { pipeline, ctx } of started.splice(0)) {
      await pipeline.stop();
      await ctx.close();
    }
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A worker of the embedded control plane (its own policy engine, built on first use). */
  async function worker(counters = new Counters()): Promise<{ pipeline: Pipeline; counters: Counters; warnings: string[] }> {
    const warnings: string[] = [];
    const base = testWorkerContext({ store, bus, downlink, counters });
    const logger = base.logger;
    vi.spyOn(logger, 'warn').mockImplementation(((_obj: unknown, msg?: string) => void warnings.push(msg ?? '')) as typeof logger.warn);
    const ctx: TestWorkerContext = { ...base, headroom };
    const pipeline = new Pipeline(ctx, { concurrency: 4, rebuildDebounceMs: 1 });
    await pipeline.start();
    started.push({ pipeline, ctx });
    return { pipeline, counters, warnings };
  }

  const upload = (): UsageBatch => ({ v: 1, id: newId(), sent_at: Date.now(), events: [{ id: newId(), ts: Date.now(), device_id: 'dev-1', app: 'dropbox', action: 'upload_file' }] });

  /** Delivers `batch` as the tower's QoS 1 PUBLISH, acknowledged after processing; returns the replies. */
  async function deliver(pipeline: Pipeline, batch: UsageBatch, opts: { dup?: boolean; replyRefused?: boolean } = {}): Promise<Reply[]> {
    const topic = topics.usage(tenantId, 'T1');
    const parsed = parseTopic(topic);
    if (!isUplinkTopic(parsed)) throw new Error('not an uplink');
    const replies: Reply[] = [];
    const msg: UplinkMessage = {
      acked_after_answer: true,
      topic,
      parsed,
      payload: encodePayload(batch),
      tower_id: 'T1',
      received_at: Date.now(),
      publish_qos: 1,
      ...(opts.dup && { dup: true as const }),
      reply: (replyTopic, payload, o) => {
        expect(replyTopic).toBe(topics.decisions(tenantId, 'T1'));
        if (opts.replyRefused) return false;
        const decoded = decodePayload(DecisionBatchSchema, payload);
        if (!decoded.ok) throw new Error(decoded.error);
        replies.push({ answer: decoded.value, beforeStored: o?.beforeStored === true, committed });
        return true;
      },
    };
    await pipeline.accept(msg);
    return replies;
  }

  it('with time to spare: answered before the commit, once, and stored', async () => {
    const { pipeline } = await worker();
    const batch = upload();
    const replies = await deliver(pipeline, batch);
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ beforeStored: true, committed: 0 });
    expect(replies[0]!.answer.decisions.map((d) => d.effect)).toEqual(['deny']);
    // The acknowledgement (accept resolving) came after the commit.
    expect(committed).toBe(1);
    expect((await store.usage.list(tenantId)).items.map((r) => r.id)).toEqual([batch.events[0]!.id]);
  });

  it('busy: answered after the commit, the answer held for the acknowledgement', async () => {
    const { pipeline } = await worker();
    spare = false;
    const replies = await deliver(pipeline, upload());
    expect(replies).toEqual([expect.objectContaining({ beforeStored: false, committed: 1 })]);
  });

  it('a resend (DUP) is answered after the store, with the decision stored the first time', async () => {
    const first = await worker();
    const batch = upload();
    await deliver(first.pipeline, batch);
    await store.rules.delete(tenantId, denyRule);
    // A worker that knows only the new policy (it builds the tenant's index on first use).
    const second = await worker();
    const replies = await deliver(second.pipeline, batch, { dup: true });
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ beforeStored: false });
    expect(replies[0]!.answer.decisions.map((d) => d.effect)).toEqual(['deny']);
    expect(second.counters.get('decisions_sent_unlike_stored_total')).toBe(0);
  });

  it('sent again without DUP across a policy change: the fresh answer went first, the store keeps the first, counted and logged', async () => {
    const first = await worker();
    const batch = upload();
    await deliver(first.pipeline, batch);
    await store.rules.delete(tenantId, denyRule);
    const second = await worker();
    const replies = await deliver(second.pipeline, batch);
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ beforeStored: true });
    expect(replies[0]!.answer.decisions.map((d) => d.effect)).toEqual(['allow']);
    expect(second.counters.get('decisions_sent_unlike_stored_total')).toBe(1);
    expect(second.warnings).toContain('answer_unlike_stored');
    const stored = (await store.usage.list(tenantId)).items;
    expect(stored.map((r) => r.effect)).toEqual(['deny']);
  });

  it('sent again without DUP, the policy unchanged: the same decision first, nothing counted', async () => {
    const { pipeline, counters } = await worker();
    const batch = upload();
    await deliver(pipeline, batch);
    const again = await deliver(pipeline, batch);
    expect(again).toEqual([expect.objectContaining({ beforeStored: true })]);
    expect(again[0]!.answer.decisions.map((d) => d.effect)).toEqual(['deny']);
    expect(counters.get('decisions_sent_unlike_stored_total')).toBe(0);
    expect(counters.get('usage_events_duplicate_total')).toBe(1);
  });

  it('where the connection cannot take it first, the answer goes after the store by the downlink', async () => {
    const { pipeline } = await worker();
    const replies = await deliver(pipeline, upload(), { replyRefused: true });
    expect(replies).toEqual([]);
    expect(downlinkSent.filter((t) => t === topics.decisions(tenantId, 'T1'))).toHaveLength(1);
    expect(committed).toBe(1);
  });
});

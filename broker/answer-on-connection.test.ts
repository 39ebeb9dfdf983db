/**
 * A tower's answer written on its own connection (UplinkMessage.reply, Broker#answerOnConnection),
 * over real sockets: it leaves in the same write as the PUBACK that follows it, answer first; it
 * reaches the tower once and console subscribers through aedes; it goes nowhere the tower is not
 * subscribed or its ACL does not reach, and never to another tower.
 */
import { Socket } from 'node:net';
import type { MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { filters, topics } from '../shared/mqtt/topics.js';
import type { UplinkMessage } from '../shared/mqtt/transport.js';
import { createIdFactory } from '../shared/ids.js';
import { inbox, startHarness, subscribeResult, type Harness, type TowerLogin } from './test-support.js';

const ulid = createIdFactory();
const usage = () => Buffer.from(JSON.stringify({ v: 1, id: ulid(), sent_at: Date.now(), events: [] }));
const ANSWER = Buffer.from('{"v":1,"answer":"for T1"}');
const T1_DECISIONS = topics.decisions('tenantA', 'T1');

type WriteFns = {
  _write(this: Socket, data: Buffer, enc: BufferEncoding, cb: () => void): void;
  _writev(this: Socket, chunks: Array<{ chunk: Buffer }>, cb: () => void): void;
};

/**
 * The bytes of each write the broker hands its socket to `c` (one `_write`/`_writev` of a
 * net.Socket is one syscall), observed by wrapping Node's own methods while `fn` runs. The
 * client reading both in one chunk would prove nothing: it runs in this process, after both.
 */
async function serverWrites(c: MqttClient, fn: () => Promise<void>): Promise<Buffer[]> {
  const port = (c.stream as Socket).localPort;
  const proto = Socket.prototype as unknown as WriteFns;
  const { _write, _writev } = proto;
  const writes: Buffer[] = [];
  proto._write = function (data, enc, cb) {
    if (this.remotePort === port) writes.push(Buffer.from(data));
    return _write.call(this, data, enc, cb);
  };
  proto._writev = function (chunks, cb) {
    if (this.remotePort === port) writes.push(Buffer.concat(chunks.map((x) => x.chunk)));
    return _writev.call(this, chunks, cb);
  };
  try {
    await fn();
  } finally {
    proto._write = _write;
    proto._writev = _writev;
  }
  return writes;
}

/** A PUBACK (0x40, remaining length 2) anywhere in `b`, as its offset, or -1. */
function pubackAt(b: Buffer): number {
  for (let i = 0; i + 1 < b.length; i++) if (b[i] === 0x40 && b[i + 1] === 0x02) return i;
  return -1;
}

describe('answer on the tower connection', () => {
  let h: Harness;
  let t1: TowerLogin;
  let t2: TowerLogin;
  let replies: boolean[];

  beforeEach(async () => {
    h = await startHarness();
    t1 = await h.createTower('T1');
    t2 = await h.createTower('T2');
    replies = [];
  });
  afterEach(async () => {
    await h.close();
  });

  const answerWith = (topic: string, payload: Buffer) => async (msg: UplinkMessage) => {
    replies.push(msg.reply?.(topic, payload) ?? false);
  };

  it('writes the answer and the PUBACK in one write, answer first', async () => {
    const c = await h.connectTower(t1);
    expect(await subscribeResult(c, filters.towerDecisions('T1'))).toBe(1);
    const box = inbox(c);
    h.sink.impl = answerWith(T1_DECISIONS, ANSWER);
    const writes = await serverWrites(c, async () => {
      await c.publishAsync(topics.usage('tenantA', 'T1'), usage(), { qos: 1 });
    });
    expect(replies).toEqual([true]);
    expect((await box.next((t) => t === T1_DECISIONS)).payload.equals(ANSWER)).toBe(true);
    expect(writes, 'one write: the answer, then the PUBACK').toHaveLength(1);
    expect(writes[0]!.indexOf(ANSWER)).toBeGreaterThan(0);
    expect(pubackAt(writes[0]!)).toBeGreaterThan(writes[0]!.indexOf(ANSWER));
  });

  it('sends the answer at once when the PUBACK does not follow in the same turn', async () => {
    const c = await h.connectTower(t1);
    await subscribeResult(c, filters.towerDecisions('T1'));
    const box = inbox(c);
    let finish!: () => void;
    const slow = new Promise<void>((r) => (finish = r));
    h.sink.impl = async (msg) => {
      replies.push(msg.reply?.(T1_DECISIONS, ANSWER) ?? false);
      await slow; // e.g. remediation still running after the answer
    };
    let acked = false;
    const published = c.publishAsync(topics.usage('tenantA', 'T1'), usage(), { qos: 1 }).then(() => (acked = true));
    await box.next((t) => t === T1_DECISIONS);
    expect(acked).toBe(false);
    finish();
    await published;
  });

  it('reaches the tower once and console subscribers through aedes', async () => {
    const dash = await h.connectConsole('tenantA');
    expect(await subscribeResult(dash, 'tenants/tenantA/#')).toBe(0);
    const dashBox = inbox(dash);
    const c = await h.connectTower(t1);
    await subscribeResult(c, filters.towerDecisions('T1'));
    const box = inbox(c);
    h.sink.impl = answerWith(T1_DECISIONS, ANSWER);
    await c.publishAsync(topics.usage('tenantA', 'T1'), usage(), { qos: 1 });
    expect((await dashBox.next((t) => t === T1_DECISIONS)).payload.equals(ANSWER)).toBe(true);
    // A marker published after it: aedes delivers in order, so a second copy would come first.
    const marker = Buffer.from('{"v":1,"marker":true}');
    const gotMarker = new Promise<void>((resolve) => c.on('message', (_t, p: Buffer) => p.equals(marker) && resolve()));
    await h.broker.downlink.publish(T1_DECISIONS, marker, { qos: 0 });
    await gotMarker;
    expect(box.messages.filter((m) => m.payload.equals(ANSWER))).toHaveLength(1);
  });

  it('offers no direct answer where the tower is not subscribed or may not receive the topic', async () => {
    const c = await h.connectTower(t1);
    // Not subscribed to its decisions: the processor must publish through the broker instead.
    h.sink.impl = answerWith(T1_DECISIONS, ANSWER);
    await c.publishAsync(topics.usage('tenantA', 'T1'), usage(), { qos: 1 });
    await subscribeResult(c, filters.towerDecisions('T1'));
    // Subscribed, but the topic is another tower's: its ACL does not reach it.
    h.sink.impl = answerWith(topics.decisions('tenantA', 'T2'), ANSWER);
    await c.publishAsync(topics.usage('tenantA', 'T1'), usage(), { qos: 1 });
    expect(replies).toEqual([false, false]);
  });

  it('stops answering on the connection once the tower unsubscribes', async () => {
    const c = await h.connectTower(t1);
    await subscribeResult(c, filters.towerDecisions('T1'));
    h.sink.impl = answerWith(T1_DECISIONS, ANSWER);
    await c.publishAsync(topics.usage('tenantA', 'T1'), usage(), { qos: 1 });
    await c.unsubscribeAsync(filters.towerDecisions('T1'));
    await c.publishAsync(topics.usage('tenantA', 'T1'), usage(), { qos: 1 });
    expect(replies).toEqual([true, false]);
  });

  it('never reaches another tower', async () => {
    const other = await h.connectTower(t2);
    await subscribeResult(other, filters.towerDecisions('T2'));
    const otherBox = inbox(other);
    const c = await h.connectTower(t1);
    await subscribeResult(c, filters.towerDecisions('T1'));
    h.sink.impl = answerWith(T1_DECISIONS, ANSWER);
    await c.publishAsync(topics.usage('tenantA', 'T1'), usage(), { qos: 1 });
    h.sink.impl = answerWith(topics.decisions('tenantA', 'T2'), ANSWER);
    await c.publishAsync(topics.usage('tenantA', 'T1'), usage(), { qos: 1 });
    const marker = Buffer.from('{"v":1,"marker":"T2"}');
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T2'), marker, { qos: 0 });
    await otherBox.next((t) => t === topics.decisions('tenantA', 'T2'));
    expect(replies).toEqual([true, false]);
    expect(otherBox.messages.map((m) => m.payload.toString())).toEqual([marker.toString()]);
  });

  it('offers one reply per message, and none for QoS 0', async () => {
    const c = await h.connectTower(t1);
    await subscribeResult(c, filters.towerDecisions('T1'));
    h.sink.impl = async (msg) => {
      replies.push(msg.reply?.(T1_DECISIONS, ANSWER) ?? false, msg.reply?.(T1_DECISIONS, ANSWER) ?? false);
    };
    await c.publishAsync(topics.usage('tenantA', 'T1'), usage(), { qos: 1 });
    expect(replies).toEqual([true, false]);
    replies = [];
    await c.publishAsync(topics.usage('tenantA', 'T1'), usage(), { qos: 0 });
    await h.sink.waitFor((m) => m.publish_qos === 0);
    expect(replies).toEqual([false, false]);
  });
});

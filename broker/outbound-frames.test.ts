/**
 * The one reader of what the broker writes to a connection: the ack deadline's owed answers and
 * a tower's command deliveries come from the same framing, across any split of the writes.
 * (Each consumer over real sockets: broker/audit-ack-deadline.test.ts,
 * broker/command-delivery.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { CommandDeliveries } from './command-deliveries.js';
import { publishPacket } from './mqtt-bytes.js';
import { OutboundFrames } from './outbound-frames.js';

const command = (tenant: string, tower: string, id: string, packetId: number) =>
  publishPacket(`tenants/${tenant}/towers/${tower}/commands`, Buffer.from(JSON.stringify({ v: 1, id })), { qos: 1, packetId });
const pubrel = (id: number) => Buffer.from([0x62, 0x02, id >> 8, id & 0xff]);

function reader(deliveries: CommandDeliveries | null) {
  const owed: number[] = [];
  let lost = 0;
  const frames = new OutboundFrames({ owed: (id) => owed.push(id), watch: deliveries, lost: () => lost++ });
  return { frames, owed, lost: () => lost };
}

describe('OutboundFrames', () => {
  const written = Buffer.concat([
    Buffer.from([0x20, 0x02, 0x00, 0x00]), // CONNACK
    publishPacket('tenants/A/towers/T1/decisions', Buffer.alloc(300), { qos: 0 }),
    publishPacket('tenants/A/towers/T1/decisions', Buffer.alloc(200), { qos: 1, packetId: 1 }),
    command('A', 'T1', 'cmd-1', 2),
    publishPacket('tenants/A/towers/T1/policy', Buffer.alloc(20_000), { qos: 2, packetId: 3 }), // a 3-byte remaining length
    pubrel(3),
    command('A', 'T2', 'not-mine', 4),
  ]);

  it.each([1, 2, 5, 64, 100_000])('reports every owed answer and this tower\'s commands from one read (%i bytes at a time)', (size) => {
    const d = new CommandDeliveries('T1', 1024);
    const r = reader(d);
    for (let i = 0; i < written.length; i += size) r.frames.written(written.subarray(i, i + size));
    expect(r.owed).toEqual([1, 2, 3, 3, 4]);
    expect([1, 2, 3, 4].map((id) => d.acknowledged(id)?.command_id ?? null)).toEqual([null, 'cmd-1', null, null]);
    expect(r.lost()).toBe(0);
  });

  it('reads the owed answers alone where no deliveries are watched (a console or carrier connection)', () => {
    const r = reader(null);
    r.frames.written(written);
    expect(r.owed).toEqual([1, 2, 3, 3, 4]);
  });

  it('does not collect a PUBLISH longer than the watch allows, but still counts what it owes', () => {
    const d = new CommandDeliveries('T1', 16);
    const r = reader(d);
    r.frames.written(publishPacket('tenants/A/towers/T1/commands', Buffer.from(JSON.stringify({ v: 1, id: 'x'.repeat(65_600) })), { qos: 1, packetId: 9 }));
    expect(r.owed).toEqual([9]);
    expect(d.acknowledged(9)).toBeNull();
  });

  it('stops, and says so once, on framing it cannot read', () => {
    const d = new CommandDeliveries('T1', 1024);
    const r = reader(d);
    r.frames.written(Buffer.from([0x32, 0xff, 0xff, 0xff, 0xff, 0x01])); // a five-byte remaining length
    r.frames.written(command('A', 'T1', 'after', 5));
    expect(r.lost()).toBe(1);
    expect(r.owed).toEqual([]);
    expect(d.acknowledged(5)).toBeNull();
  });

  it('stops on a PUBLISH whose packet id lies beyond its own length', () => {
    const r = reader(null);
    // QoS 1 PUBLISH, remaining length 4: topic length 10 cannot fit.
    r.frames.written(Buffer.from([0x32, 0x04, 0x00, 0x0a, 0x61, 0x62]));
    expect(r.lost()).toBe(1);
    expect(r.owed).toEqual([]);
  });
});

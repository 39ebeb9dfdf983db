/**
 * deliverOutOfOrderPackets: aedes' per-client duplicate filter is replaced by one that keeps
 * nothing (delivery itself is tested end to end in session-persistence.test.ts, "many concurrent
 * downlinks to one tower"). It keeps nothing, so one object serves every client: a connection
 * no longer pays for a Proxy, its target, handler and two closures (bench j).
 */
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { Aedes, type Client } from 'aedes';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { deliverOutOfOrderPackets, releaseConnectPacket } from './backends.js';

describe('deliverOutOfOrderPackets', () => {
  it('installs a filter that forgets every counter aedes writes, shared by all clients', () => {
    const a: { duplicates?: Record<string, number> } = {};
    const b: { duplicates?: Record<string, number> } = {};
    deliverOutOfOrderPackets(a);
    deliverOutOfOrderPackets(b);
    const filter = a.duplicates!;
    // What aedes' dedupe does: read the last counter of a broker id, then store the new one.
    expect(filter['broker-1']).toBeUndefined();
    filter['broker-1'] = 42;
    expect(filter['broker-1']).toBeUndefined();
    expect(b.duplicates!['broker-1']).toBeUndefined();
    expect(b.duplicates).toBe(filter);
  });
});

describe('releaseConnectPacket', () => {
  it('with real aedes and mqtt.js: the parser no longer holds the CONNECT, the will is a copy of its own size, and later packets still parse', async () => {
    const password = Buffer.from('tower-secret-password');
    let connectPacket: { password?: Buffer; will?: { payload?: Buffer | string } } | null = null;
    const aedes = await Aedes.createBroker({
      preConnect: (client, packet, done) => {
        releaseConnectPacket(client, packet);
        connectPacket = packet;
        done(null, true);
      },
      // authenticate still receives the password from the packet itself.
      authenticate: (_client, username, pass, done) => done(null, username === 'tower' && pass !== undefined && password.equals(pass)),
    });
    const server = createServer(aedes.handle);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      const published = new Promise<{ topic: string; payload: Buffer }>((resolve) => aedes.on('publish', (packet, client) => client && resolve({ topic: packet.topic, payload: packet.payload as Buffer })));
      const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: 'T1',
        username: 'tower',
        password: password.toString(),
        protocolVersion: 4,
        will: { topic: 'status', payload: Buffer.from('offline'), qos: 1, retain: false },
        reconnectPeriod: 0,
      });
      try {
        const client = (aedes as unknown as { clients: Record<string, Client> }).clients['T1'] as unknown as {
          _parser: { settings: Record<string, unknown> };
          will: { payload: Buffer } | null;
        };
        expect(client._parser.settings).toEqual({ protocolVersion: 4, bridgeMode: undefined });
        expect(JSON.stringify(client._parser.settings)).not.toContain('tower-secret');
        // The will aedes keeps is the payload, in a buffer of its own (not the socket read's).
        expect(client.will!.payload.toString()).toBe('offline');
        const read = connectPacket!.password!.buffer;
        expect(client.will!.payload.buffer).not.toBe(read);
        // ... and not a slice of Node's shared pool either, whose slab the will would keep alive.
        expect(client.will!.payload.byteOffset).toBe(0);
        expect(client.will!.payload.buffer.byteLength).toBe('offline'.length);
        // Packets after the CONNECT still parse (the parser reads the version from its settings).
        await c.publishAsync('usage', Buffer.from('x'), { qos: 1 });
        expect(await published).toMatchObject({ topic: 'usage', payload: Buffer.from('x') });
      } finally {
        await c.endAsync();
      }
    } finally {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

/**
 * The broker and the edge agent write MQTT without mqtt-packet's cache of every 2-byte number
 * (65,536 Buffers, ~7 MB of heap per process): the cache stays empty after real packets went
 * both ways, and the bytes on the wire are the same.
 */
import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { generate, parser, writeToStream } from 'mqtt-packet';
import '../../broker/edgeplane-aedes.js';
import '../../edge-agent/tower-session.js';
import './mqtt-downlink.js';

const numbers = createRequire(import.meta.url)('mqtt-packet/numbers.js') as { cache: Record<number, Buffer> };

describe('mqtt-packet number cache', () => {
  it('is off once the broker, the agent and the workers\' downlink are loaded, and packets are written the same', async () => {
    expect(writeToStream.cacheNumbers).toBe(false);
    const packet = { cmd: 'publish' as const, topic: 'tenants/t/towers/w/decisions', payload: Buffer.from('{"v":1}'), qos: 1 as const, messageId: 0x1234, retain: false, dup: false };
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    writeToStream(packet, stream);
    await new Promise((r) => setImmediate(r));
    const written = Buffer.concat(chunks);
    // The same bytes as mqtt-packet's one-shot encoder, and they parse back to the packet.
    expect(written.equals(generate(packet))).toBe(true);
    const p = parser();
    const parsed = new Promise<{ messageId?: number; topic?: string }>((resolve) => p.once('packet', resolve));
    p.parse(written);
    expect(await parsed).toMatchObject({ messageId: 0x1234, topic: packet.topic });
    expect(Object.keys(numbers.cache)).toHaveLength(0);
  });
});

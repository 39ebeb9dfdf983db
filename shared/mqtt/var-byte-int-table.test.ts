/**
 * mqtt-packet's cache of packet-length encodings holds views of one table, not slices of Node's
 * shared buffer pool (each of which kept an 8 KB slab alive: var-byte-int-table.ts), and the
 * lengths still read back as written.
 */
import './var-byte-int-table.js';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parser, writeToStream, type IPublishPacket, type Packet } from 'mqtt-packet';
import { projectPath } from '../project-root.js';
import { isFromVarByteIntTable, varByteInt } from './var-byte-int-table.js';

/** MQTT 3.1.1 §2.2.3: seven bits a byte, least significant first, the top bit says "more". */
function decode(b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) n += (b[i]! & 0x7f) * 128 ** i;
  return n;
}

function publish(remainingLength: number): IPublishPacket {
  // A QoS 0 publish to 't': 2 bytes of topic length, 1 of topic, then the payload.
  return { cmd: 'publish', topic: 't', payload: Buffer.alloc(remainingLength - 3, 7), qos: 0, retain: false, dup: false };
}

/** What writeToStream writes for one packet, chunk by chunk (the fixed header byte, then the length, …). */
function chunksOf(packet: Packet): Buffer[] {
  const chunks: Buffer[] = [];
  // Strings (the topic) are written as strings.
  writeToStream(packet, { write: (c: Buffer | string) => chunks.push(typeof c === 'string' ? Buffer.from(c) : c) > 0 } as unknown as NodeJS.WritableStream);
  return chunks;
}

describe('packet lengths from a table', () => {
  it('encodes every length below 16,384 as MQTT does, in 1 byte below 128 and 2 from 128, and longer ones as before', () => {
    for (let n = 0; n < 16_384; n++) {
      const b = varByteInt(n);
      expect(b.length).toBe(n < 128 ? 1 : 2);
      expect(decode(b)).toBe(n);
    }
    for (const [n, len] of [[16_384, 3], [2_097_151, 3], [2_097_152, 4], [268_435_455, 4]] as const) {
      expect(decode(varByteInt(n))).toBe(n);
      expect(varByteInt(n)).toHaveLength(len);
    }
  });

  it('keeps no slab of the shared buffer pool alive: every cached length is a view of the table, however the pool is used around it', () => {
    const pinned: number[] = [];
    // Distinct lengths (each new one is cached for the process's life), with pool allocations in
    // between as the traffic around a broker's writes makes them.
    for (let n = 130; n < 16_384; n += 11) {
      Buffer.allocUnsafe(64);
      const lengthChunk = chunksOf(publish(n))[1]!;
      expect(decode(lengthChunk)).toBe(n);
      if (!isFromVarByteIntTable(lengthChunk)) pinned.push(n);
    }
    expect(pinned).toEqual([]);
  });

  it('writes packets that parse back with their payloads, across the 1-, 2- and 3-byte boundaries', async () => {
    const lengths = [3, 127, 128, 129, 16_383, 16_384, 16_385, 70_000];
    const p = parser();
    const parsed: number[] = [];
    p.on('packet', (pk: Packet) => parsed.push(pk.cmd === 'publish' ? (pk.payload as Buffer).length + 3 : -1));
    for (const n of lengths) p.parse(Buffer.concat(chunksOf(publish(n))));
    expect(parsed).toEqual(lengths);
  });

  it('is the first import of every entry point, so mqtt-packet loads after it', () => {
    for (const entry of ['cli/edgeplane.ts', 'cli/agent-entry.ts']) {
      const src = readFileSync(projectPath(entry), 'utf8');
      expect(src.match(/^import\s+[^;]*;/m)?.[0], entry).toBe("import '../shared/mqtt/var-byte-int-table.js';");
    }
  });
});

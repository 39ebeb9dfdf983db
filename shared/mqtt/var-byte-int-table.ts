/**
 * mqtt-packet keeps the encoding of every packet length below 16,384 it has written (the
 * `varByteIntCache` private to its writeToStream.js: up to 16,384 entries, never emptied), and
 * makes each one with `Buffer.allocUnsafe(4)`: a 1–2-byte slice of Node's shared 8 KB buffer pool.
 * A slice keeps its whole 8 KB slab alive, with whatever else was cut from the slab. Under bench
 * (j)'s drift load (10,000 events/s) heap snapshots of the control plane found 1,509 such entries
 * holding 12.4 MB of buffer memory after one minute and 2,218 holding 18.2 MB after two — the
 * whole rise of the process's malloc heap over the run — and at the bound it is 16,384 × 8 KB =
 * 128 MiB per process (the broker, the workers' downlink and the edge agent all write MQTT).
 *
 * This module gives mqtt-packet those encodings cut from one 32 KB table of their own instead, so
 * the cache holds 32 KB of buffer memory whatever lengths it meets (the Buffer objects themselves,
 * ~270 B each, are made only for lengths actually written). writeToStream.js reads
 * `numbers.genBufVariableByteInt` once, when it loads: this module must be evaluated before
 * anything loads mqtt-packet, so it is the first import of every entry point (cli/edgeplane.ts,
 * cli/agent-entry.ts; a test checks both).
 */
import numbers from 'mqtt-packet/numbers.js';

/** mqtt-packet caches the lengths below this (writeToStream.js, writeVarByteInt). */
const CACHED_BELOW = 16_384;

/** Each length's encoding at 2 × length: one byte below 128, two from 128 (MQTT 3.1.1 §2.2.3). */
const TABLE = Buffer.allocUnsafeSlow(2 * CACHED_BELOW);
for (let n = 0; n < CACHED_BELOW; n++) {
  TABLE[2 * n] = n < 128 ? n : (n % 128) | 0x80;
  TABLE[2 * n + 1] = n >> 7;
}

const generated = numbers.genBufVariableByteInt;

/** The encoding of `n`: a view of the table below 16,384 (what mqtt-packet keeps), else a fresh one. */
export function varByteInt(n: number): Buffer {
  if (n >= 0 && n < CACHED_BELOW && Number.isInteger(n)) return TABLE.subarray(2 * n, 2 * n + (n < 128 ? 1 : 2));
  return generated(n);
}

numbers.genBufVariableByteInt = varByteInt;

/** Whether a chunk mqtt-packet wrote is cut from the table (what shows that it was loaded after this module). */
export function isFromVarByteIntTable(chunk: Uint8Array): boolean {
  return chunk.buffer === TABLE.buffer;
}

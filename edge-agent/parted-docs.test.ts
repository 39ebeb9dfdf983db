/**
 * Head + parts reassembly under the orders a reconnect produces: queued QoS 1 messages of the
 * old session replay while live and retained ones arrive, so older heads and parts interleave
 * with newer ones. The newest complete version must win, whatever the order.
 */
import { describe, expect, it } from 'vitest';
import { partRef } from '../shared/policy/edge-bundle.js';
import { PartedDocs } from './parted-docs.js';

interface Head {
  version: number;
  parts: string[];
}

const payload = (s: string): Buffer => Buffer.from(s);
const headOf = (version: number, ...parts: string[]): Head => ({ version, parts: parts.map((p) => partRef(payload(p))) });

function docs() {
  const completed: Array<[number, string[]]> = [];
  const d = new PartedDocs<Head, string>((_key, head, parts) => completed.push([head.version, parts]));
  return { completed, d, head: (h: Head) => d.head('k', h), part: (i: number, s: string) => d.part('k', i, payload(s), s) };
}

describe('PartedDocs', () => {
  it('is incomplete from a head until every part it names is held, and again for a newer head', () => {
    const { d, head, part } = docs();
    expect(d.incomplete()).toBe(false);
    part(0, 'a1');
    // Parts without a head: nothing known to wait for.
    expect(d.incomplete()).toBe(false);
    head(headOf(1, 'a1', 'b1'));
    expect(d.incomplete()).toBe(true);
    part(1, 'b1');
    expect(d.incomplete()).toBe(false);
    head(headOf(2, 'a1', 'b2'));
    expect(d.incomplete()).toBe(true);
    part(1, 'b2');
    expect(d.incomplete()).toBe(false);
  });

  it('completes once every part the head names is held, in any order', () => {
    const { completed, head, part } = docs();
    part(1, 'b1');
    head(headOf(1, 'a1', 'b1'));
    expect(completed).toEqual([]);
    part(0, 'a1');
    expect(completed).toEqual([[1, ['a1', 'b1']]]);
  });

  it('a part replayed late does not evict the newer content the newer head names', () => {
    const { completed, head, part } = docs();
    part(0, 'a1');
    head(headOf(1, 'a1'));
    // Live: v2's part; then the old session's queued copy of v1's part; then v2's head.
    part(0, 'a2');
    part(0, 'a1');
    head(headOf(2, 'a2'));
    expect(completed.map(([v]) => v)).toEqual([1, 2]);
    expect(completed.at(-1)).toEqual([2, ['a2']]);
  });

  it('a head replayed late does not replace a newer pending or completed head', () => {
    const { completed, head, part } = docs();
    head(headOf(2, 'a2'));
    head(headOf(1, 'a1'));
    part(0, 'a1');
    expect(completed).toEqual([]);
    part(0, 'a2');
    expect(completed).toEqual([[2, ['a2']]]);
    head(headOf(1, 'a1'));
    expect(completed).toHaveLength(1);
    // The same version published again (to a tower that starts serving the tenant) still applies.
    head(headOf(2, 'a2'));
    expect(completed).toEqual([
      [2, ['a2']],
      [2, ['a2']],
    ]);
  });

  it('keeps a bounded number of contents per part, and only the named one once complete', () => {
    const { completed, head, part } = docs();
    for (const s of ['x1', 'x2', 'x3', 'x4']) part(0, s);
    // x1 was evicted (3 kept): a head naming it waits for it to arrive again.
    head(headOf(1, 'x1'));
    expect(completed).toEqual([]);
    head(headOf(2, 'x3'));
    expect(completed).toEqual([[2, ['x3']]]);
    // Completion kept x3 alone: x4 is gone too.
    head(headOf(3, 'x4'));
    expect(completed).toHaveLength(1);
    part(0, 'x4');
    expect(completed.at(-1)).toEqual([3, ['x4']]);
  });
});

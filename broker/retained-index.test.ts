import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../simulator/prng.js';
import { RetainedIndex } from './retained-index.js';

/** MQTT 3.1.1 topic matching written the plain way, level by level [MQTT-4.7]. */
function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true; // also the parent level: 'a/#' matches 'a' (t has i levels)
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

describe('RetainedIndex', () => {
  it('finds the topics the filters match, each once', () => {
    const index = new RetainedIndex();
    for (const t of ['tenants/A/towers/T1/policy', 'tenants/A/towers/T1/policy/0', 'tenants/B/towers/T1/policy', 'tenants/A/towers/T2/policy', 'towers/T1/status', 'directory/x', 'directory/x/3', '$SYS/x', 'a//b']) index.add(t);
    expect(index.match(['tenants/+/towers/T1/policy/#']).sort()).toEqual(['tenants/A/towers/T1/policy', 'tenants/A/towers/T1/policy/0', 'tenants/B/towers/T1/policy']);
    expect(index.match(['directory/#', 'directory/+']).sort()).toEqual(['directory/x', 'directory/x/3']);
    expect(index.match(['#']).sort()).not.toContain('$SYS/x');
    expect(index.match(['+/x'])).toEqual(['directory/x']);
    expect(index.match(['+/y/#'])).toEqual([]);
    expect(index.match(['$SYS/#'])).toEqual(['$SYS/x']);
    expect(index.match(['a/+/b'])).toEqual(['a//b']);
    expect(index.size).toBe(9);
  });

  it('forgets a cleared topic and prunes its branch', () => {
    const index = new RetainedIndex();
    index.add('a/b/c');
    index.add('a/b');
    index.delete('a/b/c');
    index.delete('a/b/c');
    index.delete('never/there');
    expect(index.match(['#'])).toEqual(['a/b']);
    index.delete('a/b');
    expect(index.match(['#'])).toEqual([]);
    expect(index.size).toBe(0);
  });

  it('agrees with plain matching on random topics and filters', () => {
    const rand = mulberry32(20261201);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const levels = ['a', 'b', 'c', '', '$x'];
    const topics = new Set<string>();
    for (let i = 0; i < 300; i++) topics.add(Array.from({ length: 1 + Math.floor(rand() * 4) }, () => pick(levels)).join('/'));
    const index = new RetainedIndex();
    for (const t of topics) index.add(t);
    const removed = [...topics].filter(() => rand() < 0.2);
    for (const t of removed) index.delete(t);
    const live = [...topics].filter((t) => !removed.includes(t));
    for (let i = 0; i < 500; i++) {
      const n = 1 + Math.floor(rand() * 4);
      const parts = Array.from({ length: n }, () => pick([...levels, '+', '+']));
      if (rand() < 0.3) parts[n - 1] = '#';
      const filter = parts.join('/');
      expect({ filter, got: index.match([filter]).sort() }).toEqual({ filter, got: live.filter((t) => matches(filter, t)).sort() });
    }
    // Pruned branches grow back (leaves hold no child map until they need one).
    for (const t of removed) index.add(t);
    expect(index.size).toBe(topics.size);
    expect(index.match(['#']).sort()).toEqual([...topics].filter((t) => !t.startsWith('$')).sort());
  });
});

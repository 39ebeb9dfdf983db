/**
 * The metric table is the one place families are described: every name the code counts is in
 * it, and the names follow Prometheus conventions (the ones `promtool check metrics` enforces).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { METRIC_DEFINITIONS } from './metric-definitions.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SOURCE_DIRS = ['api', 'broker', 'cli', 'edge-agent', 'shared', 'simulator', 'workers'];

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sourceFiles(path)));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

describe('metric definitions', () => {
  it('list every metric the code counts, observes or gauges', async () => {
    const used = new Map<string, string>();
    for (const dir of SOURCE_DIRS) {
      for (const file of await sourceFiles(join(ROOT, dir))) {
        if (/shared[/\\]metric(s|-definitions)\.ts$/.test(file)) continue;
        const text = await readFile(file, 'utf8');
        for (const m of text.matchAll(/\.(?:inc|observe|set|gauge)\(\s*'([a-z][a-z0-9_]*)'/g)) used.set(m[1]!, relative(ROOT, file));
        // Names passed through a constant or a conditional: `… ? 'a_total' : 'b_total'`, `X_COUNTER = '…'`.
        for (const m of text.matchAll(/'([a-z][a-z0-9_]*_total)'/g)) if (!used.has(m[1]!)) used.set(m[1]!, relative(ROOT, file));
      }
    }
    const missing = [...used].filter(([name]) => !(name in METRIC_DEFINITIONS)).map(([name, file]) => `${name} (${file})`);
    expect(missing).toEqual([]);
  });

  it('follow Prometheus naming: counters end in _total, nothing else does; help and labels present', () => {
    for (const [name, d] of Object.entries(METRIC_DEFINITIONS)) {
      expect(name, name).toMatch(/^[a-z][a-z0-9_]*$/);
      expect(name.endsWith('_total'), name).toBe(d.type === 'counter');
      expect(d.help.length, name).toBeGreaterThan(10);
      for (const l of d.labels) expect(l, `${name}{${l}}`).toMatch(/^[a-z][a-z0-9_]*$/);
      if (d.type === 'histogram') expect(d.buckets?.length, name).toBeGreaterThan(0);
    }
  });
});

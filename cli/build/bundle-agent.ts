/**
 * The edge agent as one file (`edgeplane-agent.mjs`): `edgeplane agent` with every dependency
 * (mqtt.js, zod, pino, …) bundled in by esbuild, so a tower needs only Node ≥ 20.19 — no npm, no
 * node_modules, no TypeScript loader. `node edgeplane-agent.mjs --help` lists its options.
 */
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';

export interface AgentBundle {
  outfile: string;
  bytes: number;
  /** Packages bundled in (from esbuild's metafile), sorted. */
  packages: string[];
}

// Bundled CommonJS dependencies call require() for Node built-ins; an ES module has none.
const BANNER = [
  '#!/usr/bin/env node',
  "import { createRequire as __edgeplaneCreateRequire } from 'node:module';",
  'const require = __edgeplaneCreateRequire(import.meta.url);',
].join('\n');

export async function bundleAgent(root: string, outfile: string): Promise<AgentBundle> {
  const result = await build({
    entryPoints: [join(root, 'cli', 'agent-entry.ts')],
    absWorkingDir: root,
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20.19',
    minify: true,
    // Licence notices of the bundled packages stay in the file.
    legalComments: 'eof',
    banner: { js: BANNER },
    metafile: true,
    logLevel: 'silent',
  });
  if (result.warnings.length > 0) {
    throw new Error(`agent bundle: ${result.warnings.map((w) => w.text).join('; ')}`);
  }
  await chmod(outfile, 0o755);
  const output = Object.values(result.metafile.outputs)[0];
  const packages = new Set<string>();
  for (const input of Object.keys(result.metafile.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
    if (m) packages.add(m[1]!);
  }
  return { outfile, bytes: output?.bytes ?? 0, packages: [...packages].sort() };
}

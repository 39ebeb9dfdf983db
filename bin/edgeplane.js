#!/usr/bin/env node
// Runs the compiled JavaScript in dist/ (`npm run build`) when it is current, else the TypeScript
// sources through tsx's loader (development: no build step needed, edits take effect at once).
//
// "Current": dist/build-stamp.json exists (written last by a build that finished) and no non-test
// .ts file under the source directories was modified after that build started — one stat per file,
// about 5 ms for ~300 files. So a source edited after a build runs as edited, never as stale
// JavaScript, until the next build. EDGEPLANE_RUN=dist or =source forces the choice (the Docker
// image sets dist and ships no sources; =dist fails when dist/ is not built).
// The same rule is cli/build/build-dist.ts's distIsCurrent: keep the two in step.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SOURCE_DIRS = ['shared', 'broker', 'api', 'workers', 'edge-agent', 'simulator', 'cli'];
const distEntry = join(root, 'dist', 'cli', 'edgeplane.js');

function stampStartedAt() {
  try {
    return JSON.parse(readFileSync(join(root, 'dist', 'build-stamp.json'), 'utf8')).started_at;
  } catch {
    return undefined;
  }
}

/** True when some compiled source is newer than `since` (stops at the first one). */
function sourceNewerThan(since) {
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory() ? walk(p) : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && statSync(p).mtimeMs > since) return true;
    }
    return false;
  };
  return SOURCE_DIRS.some((d) => existsSync(join(root, d)) && walk(join(root, d)));
}

function distIsCurrent() {
  const startedAt = stampStartedAt();
  return typeof startedAt === 'number' && existsSync(distEntry) && !sourceNewerThan(startedAt);
}

const forced = process.env.EDGEPLANE_RUN;
if (forced !== undefined && forced !== '' && forced !== 'dist' && forced !== 'source') {
  process.stderr.write(`edgeplane: EDGEPLANE_RUN must be "dist" or "source", not ${JSON.stringify(forced)}\n`);
  process.exit(2);
}
if (forced === 'dist' && !existsSync(distEntry)) {
  process.stderr.write('edgeplane: EDGEPLANE_RUN=dist but dist/ is not built; run npm run build\n');
  process.exit(1);
}

if (forced === 'dist' || (forced !== 'source' && distIsCurrent())) {
  await import(pathToFileURL(distEntry).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../cli/edgeplane.ts');
}

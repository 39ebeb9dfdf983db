#!/usr/bin/env node
// npm's `prepare` hook (npm ci / npm install in this checkout): build dist/ when the build can
// run — typescript (a devDependency) installed and the sources present — so a developer's
// `npm ci` leaves a built tree. It skips, successfully, where it cannot: `npm ci --omit=dev`
// (no typescript) and the Docker image's dependency stage (package.json only); the bin then runs
// the sources through tsx, or the image builds in its own stage. Plain JavaScript: it runs before
// anything is built.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const script = fileURLToPath(new URL('../cli/build/build.ts', import.meta.url));
const say = (s) => process.stdout.write(`edgeplane prepare: ${s}\n`);

let hasTypescript = true;
try {
  createRequire(new URL('../package.json', import.meta.url)).resolve('typescript/package.json');
} catch {
  hasTypescript = false;
}
if (!hasTypescript) {
  say('typescript is not installed (production install): not building; the CLI runs the TypeScript sources');
} else if (!existsSync(script)) {
  say('sources not present: not building');
} else {
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: root, stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
}

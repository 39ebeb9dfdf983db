/**
 * `npm run build`: the TypeScript sources compiled by tsc into dist/ (test fixtures excluded, see
 * tsconfig.build.json), the standalone agent bundle beside them, then a build stamp.
 *
 * The stamp records when the build STARTED. bin/edgeplane.js runs dist/ only while no source file
 * is newer than that (the same rule as distIsCurrent below; keep the two in step), so a source
 * edited after — or during — a build runs from the sources, never as stale JavaScript. The stamp
 * is removed first and written last: a failed or half-finished build leaves no stamp, and the
 * sources run.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { bundleAgent, type AgentBundle } from './bundle-agent.js';

export const STAMP_FILE = 'build-stamp.json';
export const AGENT_BUNDLE_FILE = 'edgeplane-agent.mjs';
/** The directories tsc compiles; an edit to a non-test .ts file under them makes dist/ stale. */
export const SOURCE_DIRS = ['shared', 'broker', 'api', 'workers', 'edge-agent', 'simulator', 'cli'];

export interface BuildStamp {
  started_at: number;
  finished_at: number;
  node: string;
  typescript: string;
  agent_bundle_bytes: number;
}

export interface BuildResult {
  outDir: string;
  stamp: BuildStamp;
  agent: AgentBundle;
}

/** The newest modification time (ms) of a compiled source file under `root`. */
export function newestSourceMtime(root: string): number {
  let newest = 0;
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of SOURCE_DIRS) if (existsSync(join(root, d))) walk(join(root, d));
  return newest;
}

/** The stamp of the build in `outDir`, or null when there is none (never built, or failed). */
export function readStamp(outDir: string): BuildStamp | null {
  try {
    return JSON.parse(readFileSync(join(outDir, STAMP_FILE), 'utf8')) as BuildStamp;
  } catch {
    return null;
  }
}

/** Whether root/dist holds a complete build no source file is newer than. */
export function distIsCurrent(root: string): boolean {
  const stamp = readStamp(join(root, 'dist'));
  return stamp !== null && existsSync(join(root, 'dist', 'cli', 'edgeplane.js')) && newestSourceMtime(root) <= stamp.started_at;
}

/** tsc from the project's own typescript (a devDependency), or null when it is not installed. */
export function findTsc(root: string): { bin: string; version: string } | null {
  const require = createRequire(join(root, 'package.json'));
  try {
    const manifest = require.resolve('typescript/package.json');
    const { version } = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string };
    return { bin: require.resolve('typescript/bin/tsc'), version };
  } catch {
    return null;
  }
}

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${[cmd, ...args].join(' ')} failed (${signal ?? `exit ${code}`})`))));
  });
}

/** Compiles `root`'s sources into `outDir` (default root/dist) and bundles the agent there. */
export async function buildDist(root: string, opts: { outDir?: string; log?: (s: string) => void } = {}): Promise<BuildResult> {
  const outDir = opts.outDir ?? join(root, 'dist');
  const log = opts.log ?? (() => {});
  const tsc = findTsc(root);
  if (!tsc) throw new Error('typescript is not installed (a devDependency): run npm ci without --omit=dev to build');
  const startedAt = Date.now();
  await mkdir(outDir, { recursive: true });
  await rm(join(outDir, STAMP_FILE), { force: true });
  log(`tsc ${tsc.version} → ${outDir}`);
  await run(process.execPath, [tsc.bin, '-p', join(root, 'tsconfig.build.json'), '--outDir', outDir], root);
  const agent = await bundleAgent(root, join(outDir, AGENT_BUNDLE_FILE));
  log(`agent bundle → ${agent.outfile} (${(agent.bytes / 1024).toFixed(0)} KB, ${agent.packages.length} packages)`);
  const stamp: BuildStamp = { started_at: startedAt, finished_at: Date.now(), node: process.version, typescript: tsc.version, agent_bundle_bytes: agent.bytes };
  await writeFile(join(outDir, STAMP_FILE), JSON.stringify(stamp, null, 2) + '\n');
  return { outDir, stamp, agent };
}

/**
 * Compiled JavaScript in production: `npm run build` (buildDist) compiles the production code —
 * no test fixture — into a tree that runs with no TypeScript beside it, importing only packages a
 * production install has; and bin/edgeplane.js runs dist/ only while it is current, so an edit
 * after a build never runs as stale JavaScript.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_BUNDLE_FILE, buildDist, STAMP_FILE } from '../../cli/build/build-dist.js';
import { findProjectRoot } from '../../shared/project-root.js';

const ROOT = findProjectRoot(import.meta.url);

function runNode(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: opts.cwd, env: { ...process.env, EDGEPLANE_RUN: '', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

describe('bin/edgeplane.js: dist when current, else the sources', () => {
  let proj: string;
  const T = 1_700_000_000; // seconds
  const source = () => join(proj, 'shared', 'x.ts');
  const stamp = (startedAtS: number) => writeFileSync(join(proj, 'dist', STAMP_FILE), JSON.stringify({ started_at: startedAtS * 1000 }));
  const which = async (env: NodeJS.ProcessEnv = {}) => runNode([join(proj, 'bin', 'edgeplane.js')], { env });

  beforeAll(async () => {
    // A project of the real bin and two stand-in entry points that say which one ran.
    proj = await mkdtemp(join(tmpdir(), 'edgeplane-bin-'));
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'edgeplane', type: 'module' }));
    mkdirSync(join(proj, 'bin'));
    cpSync(join(ROOT, 'bin', 'edgeplane.js'), join(proj, 'bin', 'edgeplane.js'));
    symlinkSync(join(ROOT, 'node_modules'), join(proj, 'node_modules'));
    mkdirSync(join(proj, 'cli'));
    writeFileSync(join(proj, 'cli', 'edgeplane.ts'), "const which: string = 'source';\nprocess.stdout.write(which);\n");
    mkdirSync(join(proj, 'dist', 'cli'), { recursive: true });
    writeFileSync(join(proj, 'dist', 'cli', 'edgeplane.js'), "process.stdout.write('dist');\n");
    mkdirSync(join(proj, 'shared'));
    writeFileSync(source(), 'export {};\n');
    writeFileSync(join(proj, 'shared', 'x.test.ts'), 'export {};\n');
    for (const f of ['cli/edgeplane.ts', 'shared/x.ts', 'shared/x.test.ts']) utimesSync(join(proj, f), T - 10, T - 10);
  });
  afterAll(async () => {
    await rm(proj, { recursive: true, force: true });
  });

  it('runs the sources when there is no build stamp (never built, or a build that failed)', async () => {
    expect((await which()).stdout).toBe('source');
  });

  it('runs dist/ once a build started after every source edit, whatever the test files', async () => {
    stamp(T);
    utimesSync(join(proj, 'shared', 'x.test.ts'), T + 10, T + 10);
    expect((await which()).stdout).toBe('dist');
  });

  it('runs the sources again as soon as a source file is newer than the build', async () => {
    stamp(T);
    utimesSync(source(), T + 1, T + 1);
    expect((await which()).stdout).toBe('source');
    stamp(T + 2);
    expect((await which()).stdout).toBe('dist');
  });

  it('EDGEPLANE_RUN forces either; a bad value exits 2, dist without a build exits 1', async () => {
    stamp(T + 2);
    expect((await which({ EDGEPLANE_RUN: 'source' })).stdout).toBe('source');
    utimesSync(source(), T + 3, T + 3);
    expect((await which({ EDGEPLANE_RUN: 'dist' })).stdout).toBe('dist');
    const bad = await which({ EDGEPLANE_RUN: 'compiled' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('EDGEPLANE_RUN must be "dist" or "source"');
    await rm(join(proj, 'dist'), { recursive: true });
    const missing = await which({ EDGEPLANE_RUN: 'dist' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('run npm run build');
  });
});

describe('npm run build', () => {
  // Laid out like the Docker image: package.json, bin/, dist/, web/, scenarios, node_modules —
  // and no TypeScript sources.
  let proj: string;
  let dist: string;
  beforeAll(async () => {
    proj = await mkdtemp(join(tmpdir(), 'edgeplane-build-'));
    dist = join(proj, 'dist');
    await buildDist(ROOT, { outDir: dist });
    cpSync(join(ROOT, 'package.json'), join(proj, 'package.json'));
    cpSync(join(ROOT, 'bin'), join(proj, 'bin'), { recursive: true });
    cpSync(join(ROOT, 'simulator', 'scenarios'), join(proj, 'simulator', 'scenarios'), { recursive: true });
    symlinkSync(join(ROOT, 'web'), join(proj, 'web'));
    symlinkSync(join(ROOT, 'node_modules'), join(proj, 'node_modules'));
  }, 180_000);
  afterAll(async () => {
    await rm(proj, { recursive: true, force: true });
  });

  it('compiles the production code and leaves every test fixture out', () => {
    const out = files(dist);
    for (const f of ['cli/edgeplane.js', 'cli/bench/relay-broker.js', 'shared/project-root.js', AGENT_BUNDLE_FILE, STAMP_FILE]) expect(out).toContain(f);
    const fixtures = out.filter((f) =>
      /(^|\/)(test|contract|fixtures)\//.test(f) ||
      /\.test\.js$|\.contract\.js$|(^|\/)test-support\.js$|memory-.*-double\.js$|takeover-child\.js$|mqtt-bytes\.js$|seed-usage\.js$|test-routes\.js$|test-broker\.js$|test-bundles\.js$/.test(f),
    );
    expect(fixtures).toEqual([]);
  });

  it('imports only packages a production install has (none of the devDependencies)', () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const builtins = new Set(builtinModules);
    // Loaded on demand by one bench part only, which says to install devDependencies without it.
    const optionalDevTools = new Set(['autocannon']);
    const imported = new Set<string>();
    const dynamic = new Set<string>();
    for (const f of files(dist).filter((x) => x.endsWith('.js'))) {
      const text = readFileSync(join(dist, f), 'utf8');
      // Static imports and re-exports (tsc emits one per line) and dynamic import() of a literal.
      for (const m of text.matchAll(/^(?:(?:import|export)\b[^'"\n]*?\bfrom\s*|import\s*)['"]([^'"./][^'"]*)['"];?$|\bimport\(\s*['"]([^'"./][^'"]*)['"]\s*\)/gm)) {
        const spec = (m[1] ?? m[2])!;
        if (spec.startsWith('node:') || builtins.has(spec)) continue;
        const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (m[2] !== undefined && optionalDevTools.has(pkg)) dynamic.add(pkg);
        else imported.add(pkg);
      }
    }
    expect(imported.size).toBeGreaterThan(10);
    const notInProduction = [...imported].filter((p) => {
      const entry = lock.packages[`node_modules/${p}`];
      return !entry || entry.dev === true;
    });
    expect(notInProduction).toEqual([]);
    expect([...dynamic]).toEqual(['autocannon']);
  });

  it('runs from dist/ with no sources beside it: version, project files, /readyz and the console', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const v = await runNode([join(proj, 'bin', 'edgeplane.js'), '--version']);
    expect(v.stdout.trim(), v.stderr).toBe(pkg.version);
    const compiledRoot = (await import(pathToFileURL(join(dist, 'shared', 'project-root.js')).href)) as typeof import('../../shared/project-root.js');
    expect(existsSync(compiledRoot.projectPath('simulator', 'scenarios', 'demo.yaml'))).toBe(true);
    expect(compiledRoot.findProjectRoot(pathToFileURL(join(dist, 'cli', 'commands', 'demo.js')).href)).toBe(proj);

    const dataDir = await mkdtemp(join(tmpdir(), 'edgeplane-build-data-'));
    const child = spawn(
      process.execPath,
      [join(proj, 'bin', 'edgeplane.js'), 'start', '--data-dir', dataDir, '--http-host', '127.0.0.1', '--http-port', '0', '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--mqtt-ws-port', '0', '--admin-password', 'build-test-password-1234'],
      { env: { ...process.env, EDGEPLANE_RUN: 'dist' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      const http = await new Promise<string>((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          const m = /"http":"(http:\/\/[^"]+)"/.exec(buf);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`start exited ${code}: ${buf}`)));
      });
      expect((await fetch(`${http}/readyz`)).status).toBe(200);
      const js = await fetch(`${http}/console/app.js`);
      expect(js.status).toBe(200);
      expect((await js.text()).length).toBeGreaterThan(10_000);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

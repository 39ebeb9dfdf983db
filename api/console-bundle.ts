/**
 * Builds the web console (web/) into the three files the API serves: the page, one JavaScript
 * module and one stylesheet, each also gzipped. esbuild bundles, tree-shakes and minifies the
 * TypeScript sources with Preact and uPlot in about a tenth of a second, in memory.
 *
 * Why at run time rather than in `npm run build`: the console is then served the same way whether
 * the control plane runs its TypeScript sources (development) or dist/ (production) — from web/,
 * which ships beside either — and what is served is always what web/ holds; a prebuilt bundle could
 * be missing or stale. The cost is one build per process, on the first console request.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

export interface ConsoleFile {
  /** Served path. */
  path: string;
  contentType: string;
  body: Buffer;
  gzip: Buffer;
}

export interface ConsoleBundle {
  files: Map<string, ConsoleFile>;
  /** Bytes of JavaScript + CSS as served, raw and gzipped (what the size budget counts). */
  size: { raw: number; gzip: number };
}

export const CONSOLE_PATHS = { page: '/', script: '/console/app.js', style: '/console/app.css' } as const;

/**
 * Size budget of the served JavaScript + CSS, gzipped. Preact is ~5 KB and uPlot ~20 KB of it; the
 * rest is the console itself. A regression past it fails api/console.test.ts.
 */
export const CONSOLE_BUDGET_GZIP_BYTES = 80 * 1024;

function file(path: string, contentType: string, body: Buffer): ConsoleFile {
  return { path, contentType, body, gzip: gzipSync(body, { level: 9 }) };
}

/** Bundles `webDir`/src/main.tsx and reads `webDir`/index.html. Throws what esbuild reported. */
export async function buildConsoleBundle(webDir: string): Promise<ConsoleBundle> {
  const result = await build({
    absWorkingDir: webDir,
    entryPoints: { app: join(webDir, 'src', 'main.tsx') },
    bundle: true,
    write: false,
    outdir: join(webDir, 'out'),
    format: 'esm',
    platform: 'browser',
    target: ['chrome115', 'firefox115', 'safari16'],
    minify: true,
    legalComments: 'none',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: join(webDir, 'tsconfig.json'),
    logLevel: 'silent',
  });
  let script: Buffer | null = null;
  let style: Buffer | null = null;
  for (const out of result.outputFiles) {
    if (out.path.endsWith('.js')) script = Buffer.from(out.contents);
    else if (out.path.endsWith('.css')) style = Buffer.from(out.contents);
  }
  if (script === null || style === null) throw new Error('the console build produced no app.js or no app.css');
  const page = await readFile(join(webDir, 'index.html'));
  const files = [
    file(CONSOLE_PATHS.page, 'text/html; charset=utf-8', page),
    file(CONSOLE_PATHS.script, 'text/javascript; charset=utf-8', script),
    file(CONSOLE_PATHS.style, 'text/css; charset=utf-8', style),
  ];
  const assets = files.filter((f) => f.path !== CONSOLE_PATHS.page);
  return {
    files: new Map(files.map((f) => [f.path, f])),
    size: {
      raw: assets.reduce((n, f) => n + f.body.length, 0),
      gzip: assets.reduce((n, f) => n + f.gzip.length, 0),
    },
  };
}

/**
 * The package's root directory, for files that ship beside the code rather than inside it
 * (package.json, web/, simulator/scenarios/, bin/). A path relative to `import.meta.url` breaks
 * once the module is compiled: shared/x.ts becomes dist/shared/x.js, one level deeper. Walking up
 * to the nearest package.json named "edgeplane" gives the same answer from the sources and from
 * dist/ (dist/ has no package.json of its own).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'edgeplane';

/** Nearest ancestor of `from` (a file or directory path, or a file: URL) holding our package.json. */
export function findProjectRoot(from: string | URL = import.meta.url): string {
  const start = typeof from === 'string' && !from.startsWith('file:') ? from : dirname(fileURLToPath(from));
  let dir = start;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && readPackageName(manifest) === PACKAGE_NAME) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json named "${PACKAGE_NAME}" in ${start} or above`);
    dir = parent;
  }
}

function readPackageName(manifest: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name;
  } catch {
    return undefined;
  }
}

/** A path under the package root, e.g. projectPath('simulator', 'scenarios', 'demo.yaml'). */
export function projectPath(...segments: string[]): string {
  return join(findProjectRoot(), ...segments);
}

/** The package's version (package.json), as `edgeplane --version` prints it. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(projectPath('package.json'), 'utf8')) as { version: string }).version;
}

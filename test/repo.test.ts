/**
 * Checks what cannot be run here but must stay true: CI runs the README's test command, the
 * compose file parses and every service runs a command the CLI has, package metadata is sane.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { COMMANDS } from '../cli/commands/index.js';

const root = new URL('../', import.meta.url);
const read = (p: string) => readFileSync(new URL(p, root), 'utf8');

describe('repository', () => {
  it('.ci/run calls the test command the README gives', () => {
    const readme = read('README.md');
    const ci = read('.ci/run');
    expect(readme).toMatch(/^npm test$/m);
    expect(ci).toMatch(/^npm test$/m);
    expect(readme).toContain('npm ci && npm run demo');
  });

  it('docker-compose.yml parses and every service runs an existing edgeplane command with a real image', () => {
    const compose = parse(read('docker-compose.yml')) as {
      services: Record<string, { image?: string; build?: unknown; command?: string[]; healthcheck?: { test: string[] } }>;
    };
    const services = Object.entries(compose.services);
    expect(services.length).toBeGreaterThan(0);
    for (const [name, svc] of services) {
      expect(svc.image ?? svc.build, `${name} has an image`).toBeTruthy();
      expect(svc.command?.[0], `${name} command`).toBeDefined();
      expect(Object.keys(COMMANDS), `${name} runs a real command`).toContain(svc.command![0]!);
    }
    expect(compose.services.edgeplane?.healthcheck?.test.join(' ')).toContain('/readyz');
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toMatch(/ENTRYPOINT \["node", "bin\/edgeplane\.js"\]/);
  });

  it('package.json pins the Node engine and exposes an executable edgeplane bin', () => {
    const pkg = JSON.parse(read('package.json')) as { type: string; engines: { node: string }; bin: Record<string, string>; scripts: Record<string, string> };
    expect(pkg.type).toBe('module');
    expect(pkg.engines.node).toBe('>=20.19');
    expect(pkg.bin.edgeplane).toBe('bin/edgeplane.js');
    accessSync(new URL('bin/edgeplane.js', root), constants.X_OK);
    for (const s of ['test', 'demo', 'bench', 'lint', 'typecheck']) expect(pkg.scripts[s]).toBeDefined();
  });
});

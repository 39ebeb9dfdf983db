/**
 * Checks what cannot be run here but must stay true: CI runs the README's test command, the
 * compose file parses and every service runs a command the CLI has, package metadata is sane.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { COMMANDS } from '../cli/commands/index.js';
import { CONFIG_OPTIONS, envName, type ConfigKey } from '../shared/config.js';

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

  it('docker-compose.yml: the distributed topology and the embedded profile, real images, healthchecks, known commands and settings', () => {
    interface Service {
      image?: string;
      build?: unknown;
      command?: string[];
      profiles?: string[];
      environment?: Record<string, string>;
      depends_on?: Record<string, { condition: string }>;
      healthcheck?: { test: string[] };
      restart?: string;
    }
    const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
    const services = compose.services;
    const known = new Set((Object.keys(CONFIG_OPTIONS) as ConfigKey[]).map(envName));
    const ours = Object.entries(services).filter(([, s]) => s.image?.startsWith('edgeplane:'));
    // Every EdgePlane service runs a real CLI command with settings the config schema knows.
    for (const [name, svc] of ours) {
      expect(Object.keys(COMMANDS), `${name} runs a real command`).toContain(svc.command?.[0]);
      for (const key of Object.keys(svc.environment ?? {})) {
        if (key.startsWith('EDGEPLANE_')) expect(known, `${name}: ${key} is a config option`).toContain(key);
      }
    }
    // Third-party services use real, pinned images.
    expect(services.mongo?.image).toMatch(/^mongo:\d/);
    expect(services.redis?.image).toMatch(/^redis:7/);
    expect(services.redis?.command?.join(' ')).toContain('--appendonly yes');
    expect(services.mongo?.command?.join(' ')).toContain('--replSet');
    // The replica set is initiated by a one-shot step the roles wait for.
    expect(services['mongo-init']?.command?.join(' ')).toContain('rs.initiate');
    // The topology: api, two brokers, two workers, each healthchecked on /readyz.
    const roles = { api: 'api', 'broker-1': 'broker', 'broker-2': 'broker', 'worker-1': 'worker', 'worker-2': 'worker' };
    for (const [name, command] of Object.entries(roles)) {
      const svc = services[name];
      expect(svc?.command, name).toEqual([command]);
      expect(svc?.healthcheck?.test.join(' '), name).toContain('/readyz');
      expect(svc?.environment?.EDGEPLANE_REDIS_URL, name).toBe('redis://redis:6379');
      expect(svc?.environment?.EDGEPLANE_STORE_URL, name).toMatch(/^mongodb:\/\/mongo:27017\/.*replicaSet=rs0/);
      expect(svc?.depends_on?.['mongo-init']?.condition, name).toBe('service_completed_successfully');
      expect(svc?.depends_on?.redis?.condition, name).toBe('service_healthy');
    }
    expect(services['worker-1']?.environment?.EDGEPLANE_MQTT_URL).toContain('broker-1');
    // Long-running services are healthchecked.
    for (const name of ['mongo', 'redis', 'api', 'broker-1', 'broker-2', 'worker-1', 'worker-2', 'edgeplane']) {
      expect(services[name]?.healthcheck, `${name} healthcheck`).toBeDefined();
    }
    // The embedded profile runs `start`.
    expect(services.edgeplane?.profiles).toEqual(['embedded']);
    expect(services.edgeplane?.command).toEqual(['start']);
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

  it('the embedded start loads no distributed-only package (their drivers load where configured)', () => {
    // Static imports reachable from the embedded entry; `import type` is erased, but under
    // verbatimModuleSyntax `import { type X }` still loads its module, so only the former is skipped.
    const distributedOnly = ['mongodb', 'bullmq', 'ioredis', 'firebase-admin'];
    const reached = new Map<string, string>();
    const seen = new Set<string>();
    const visit = (file: URL) => {
      if (seen.has(file.href)) return;
      seen.add(file.href);
      const src = readFileSync(file, 'utf8');
      for (const m of src.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^;'"]*?\sfrom\s+)?'([^']+)';/gm)) {
        if (m[1]) continue;
        const spec = m[2]!;
        if (spec.startsWith('.')) visit(new URL(spec.replace(/\.js$/, '.ts'), file));
        else reached.set(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!, file.pathname);
      }
    };
    visit(new URL('cli/commands/start.ts', root));
    expect(seen.size, 'the walk follows the embedded graph').toBeGreaterThan(100);
    expect(reached.has('aedes') && reached.has('better-sqlite3'), 'the walk sees packages').toBe(true);
    for (const pkg of distributedOnly) expect(reached.get(pkg), `${pkg} is imported statically`).toBeUndefined();
  });
});

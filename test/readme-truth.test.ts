/**
 * The README is what newcomers and third-party tools (scrapers, scripts, compose files) go by, so
 * what it names must exist: every option of the configuration table with its env var and default,
 * every flag it passes to a command (compared with that command's real `--help`), every EDGEPLANE_*
 * variable, the defaults the prose states, every metric family (in a real control plane's
 * /metrics), every REST route (in the OpenAPI document that control plane serves), every source
 * file it names, and the flags docker-compose.yml passes.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { COMMANDS } from '../cli/commands/index.js';
import { CONFIG_OPTIONS, ConfigSchema, envName, type ConfigKey } from '../shared/config.js';
import { METRIC_DEFINITIONS } from '../shared/metric-definitions.js';
import { topics } from '../shared/mqtt/topics.js';
import { startTestControlPlane, type TestControlPlane } from './support/control-plane.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const METRICS_TOKEN = 'readme-truth-metrics-token';

/** Flags the README passes to programs that are not ours (redis-server, node, npm, docker). */
const THIRD_PARTY_FLAGS = new Set([
  '--port', '--appendonly', '--appendfsync', '--omit', '--profile', '--noEmit',
  '--max-semi-space-size', '--single-threaded-gc', '--trace-gc', '--trace-gc-nvp', '--import',
]);
/** Gauges only the distributed roles set (the README's metrics table says "distributed" / "broker role"). */
const DISTRIBUTED_ONLY_GAUGES = new Set(['uplink_queue_depth', 'uplink_held_bytes']);
/** Flags the top-level `edgeplane` takes besides a command (cli/edgeplane.ts). */
const TOP_LEVEL_FLAGS = new Set(['--help', '--version']);

const configKeyByFlag = new Map((Object.keys(CONFIG_OPTIONS) as ConfigKey[]).map((k) => [`--${CONFIG_OPTIONS[k].flag}`, k]));
const schemaDefaults = ConfigSchema.parse({}) as Record<string, unknown>;

/** Splits a Markdown table row into cells, ignoring `|` inside backticks. */
function cells(row: string): string[] {
  const out: string[] = [];
  let cur = '';
  let code = false;
  for (const ch of row.trim().replace(/^\|/, '').replace(/\|$/, '')) {
    if (ch === '`') code = !code;
    if (ch === '|' && !code) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  out.push(cur.trim());
  return out;
}

/** The rows of the table whose header row starts with `header`. */
function tableRows(header: string): string[][] {
  const lines = README.split('\n');
  const start = lines.findIndex((l) => l.startsWith(header));
  expect(start, `README has a table starting ${header}`).toBeGreaterThan(-1);
  const rows: string[][] = [];
  for (let i = start + 2; i < lines.length && lines[i]!.startsWith('|'); i++) rows.push(cells(lines[i]!));
  return rows;
}

/** `a` / `b` → the backticked values of each part, or undefined for a part without one (unset, generated). */
function slashParts(cell: string): Array<string | undefined> {
  return cell.split(' / ').map((p) => /`([^`]*)`/.exec(p)?.[1]);
}

/** Command lines the README shows: code-block lines (backslash continuations joined) and inline code. */
function commandLines(): string[] {
  const out: string[] = [];
  let inBlock = false;
  let pending = '';
  for (const line of README.split('\n')) {
    if (line.startsWith('```')) {
      inBlock = !inBlock;
      continue;
    }
    if (inBlock) {
      const text = pending + line.replace(/#.*$/, '');
      if (text.trimEnd().endsWith('\\')) pending = text.trimEnd().slice(0, -1) + ' ';
      else {
        out.push(text);
        pending = '';
      }
    } else for (const m of line.matchAll(/`([^`]+)`/g)) out.push(m[1]!);
  }
  return out;
}

/** The command each README command line runs, with the flags it passes to it. */
function commandInvocations(): Array<{ line: string; command: string; flags: string[] }> {
  const out: Array<{ line: string; command: string; flags: string[] }> = [];
  for (const line of commandLines()) {
    for (const part of line.split(/&&|\||;|&(?!\w)/)) {
      const m = /(?:\bedgeplane|bin\/edgeplane\.js|npm run (demo|bench|start) --)\s+(\S+)?(.*)$/.exec(part);
      if (!m) continue;
      const command = m[1] ?? m[2];
      if (command === undefined || !(command in COMMANDS)) continue;
      const rest = m[1] ? `${m[2] ?? ''}${m[3]}` : m[3]!;
      out.push({ line: line.trim(), command, flags: [...rest.matchAll(/(?:^|\s|\[)(--[a-z][a-z0-9-]*)/g)].map((f) => f[1]!) });
    }
  }
  return out;
}

const helpOf = new Map<string, string>();
let cp: TestControlPlane;

beforeAll(async () => {
  // Each command's --help, as it prints it (spawning the nine took 30 s on a loaded 2-core host;
  // test/e2e/cli.test.ts runs them through the real bin).
  const write = process.stdout.write.bind(process.stdout);
  for (const name of Object.keys(COMMANDS)) {
    const run = await COMMANDS[name]!.load();
    let text = '';
    process.stdout.write = ((chunk: string | Uint8Array) => {
      text += chunk.toString();
      return true;
    }) as typeof process.stdout.write;
    let code: number;
    try {
      code = await run(['--help']);
    } finally {
      process.stdout.write = write;
    }
    expect(code, `edgeplane ${name} --help exits 0`).toBe(0);
    helpOf.set(name, text);
  }
  cp = await startTestControlPlane({ config: { metrics_token: METRICS_TOKEN } });
}, 60_000);

afterAll(async () => {
  await cp?.destroy();
});

/** The flags a command's --help lists (with `--help` itself). */
function helpFlags(command: string): Set<string> {
  return new Set(['--help', ...[...helpOf.get(command)!.matchAll(/^\s+(--[a-z][a-z0-9-]*)/gm)].map((m) => m[1]!)]);
}

describe('README configuration table', () => {
  const rows = tableRows('| option | env | default |');

  it('every option exists in `start --help`, with its env var and the same default', () => {
    const help = helpOf.get('start')!;
    expect(rows.length).toBeGreaterThan(30);
    for (const [optionCell, envCell, defaultCell] of rows) {
      const flags = [...optionCell!.matchAll(/`(--[a-z0-9-]+)`/g)].map((m) => m[1]!);
      expect(flags.length, optionCell).toBeGreaterThan(0);
      const envs = envCell!.split(' / ').map((p) => /`([A-Z0-9_]+)`/.exec(p)?.[1]);
      const defaults = slashParts(defaultCell!);
      flags.forEach((flag, i) => {
        const key = configKeyByFlag.get(flag);
        expect(key, `${flag} is a config option`).toBeDefined();
        // `start --help` lists the flag, then its env var on the next line.
        expect(help, `start --help lists ${flag}`).toMatch(new RegExp(`^  ${flag} .*\\n\\s+env ${envName(key!)}$`, 'm'));
        // `EDGEPLANE_HTTP_HOST` / `_PORT`: the second replaces the last word of the first.
        const env = envs[i];
        if (env !== undefined) {
          const full = env.startsWith('_') ? envs[0]!.replace(/_[A-Z0-9]+$/, env) : env;
          expect(full, flag).toBe(envName(key!));
        }
        const documented = defaults.length === flags.length ? defaults[i] : defaults[0];
        const actual = schemaDefaults[key!];
        if (actual === undefined) {
          // No schema default: the README says unset/generated, or a derived default the help states.
          if (documented !== undefined && documented !== '—') expect(CONFIG_OPTIONS[key!].describe, flag).toContain(documented);
        } else {
          expect(documented, `${flag} default`).toBe(String(actual));
          expect(help, `${flag} default in --help`).toMatch(new RegExp(`^  ${flag} .*\\(default: ${String(actual).replace(/[.]/g, '\\.')}\\)$`, 'm'));
        }
      });
    }
  });

  it('every config option is documented in a README options table', () => {
    const inTables = new Set(
      README.split('\n')
        .filter((l) => l.startsWith('| `--'))
        .flatMap((l) => [...cells(l)[0]!.matchAll(/`(--[a-z0-9-]+)`/g)].map((m) => m[1]!)),
    );
    const missing = [...configKeyByFlag.keys()].filter((f) => !inTables.has(f));
    expect(missing).toEqual([]);
  });

  it('the MQTT resource caps table gives the schema defaults', () => {
    const units: Record<string, number> = { KiB: 1024, MiB: 1024 * 1024 };
    for (const [optionCell, defaultCell] of tableRows('| option | default | caps |')) {
      const flags = [...optionCell!.matchAll(/`(--[a-z0-9-]+)`/g)].map((m) => m[1]!);
      const values = defaultCell!.split(' / ').map((v) => {
        const [n, unit] = v.trim().split(' ');
        return Number(n!.replace(/,/g, '')) * (unit ? units[unit]! : 1);
      });
      flags.forEach((flag, i) => expect(values[i], `${flag} default`).toBe(schemaDefaults[configKeyByFlag.get(flag)!]));
    }
  });
});

describe('README commands and flags', () => {
  it('every command has --help naming its usage', () => {
    for (const name of Object.keys(COMMANDS)) expect(helpOf.get(name), name).toContain(`Usage: edgeplane ${name}`);
  });

  it('every flag a README command line passes is in that command\'s --help', () => {
    const invocations = commandInvocations();
    expect(invocations.length).toBeGreaterThan(15);
    const bad = invocations.flatMap(({ line, command, flags }) =>
      flags.filter((f) => !helpFlags(command).has(f)).map((f) => `${command} ${f}: ${line}`),
    );
    expect(bad).toEqual([]);
  });

  it('every --flag the README mentions belongs to some command (or to a named third-party tool)', () => {
    const ours = new Set([...TOP_LEVEL_FLAGS, ...Object.keys(COMMANDS).flatMap((c) => [...helpFlags(c)])]);
    // `--command-retry-*-ms`, `--http-*-timeout-ms`: patterns, checked against the flags they stand for.
    const unknown = [...new Set([...README.matchAll(/(?:^|[\s`(/[])(--[a-zA-Z][a-zA-Z0-9-]*)(\*[a-z-]*)?/g)].map((m) => (m[2] ? `${m[1]}*${m[2].slice(1)}` : m[1]!)))]
      .filter((f) => !ours.has(f) && !THIRD_PARTY_FLAGS.has(f))
      .filter((f) => !(f.includes('*') && [...ours].some((o) => new RegExp(`^${f.replace('*', '.+')}$`).test(o))));
    expect(unknown).toEqual([]);
  });

  it('every flag of every command\'s --help is in the README (bench: its knobs are left to --help, as the README says)', () => {
    const mentioned = new Set([...README.matchAll(/--[a-z][a-z0-9-]*/g)].map((m) => m[0]));
    const omitted = Object.keys(COMMANDS)
      .filter((c) => c !== 'bench')
      .flatMap((c) => [...helpFlags(c)].filter((f) => f !== '--help' && !mentioned.has(f)).map((f) => `${c} ${f}`));
    expect(omitted).toEqual([]);
    expect(README).toMatch(/`--help` lists the knobs/);
  });

  it('defaults the prose gives in passing, "`--flag` (default 10 s)", are those of --help', () => {
    const helpDefault = (flag: string) =>
      [...helpOf.values()].map((h) => new RegExp(`^\\s+${flag} .*\\(default: ([^)]*)\\)$`, 'm').exec(h)?.[1]).find((d) => d !== undefined);
    const toUnit = (flag: string, n: number, unit: string | undefined) =>
      unit === 's' && flag.endsWith('-ms') ? n * 1000 : unit === 'MiB' && flag.endsWith('-bytes') ? n * 1024 * 1024 : n;
    const stated = [...README.matchAll(/`(--[a-z0-9-]+)` \((?:default:? )?([0-9][0-9,.]*)(?: (ms|s|MiB))?[),;]/g)]
      // `--http-request-timeout-ms` (408): the status it answers, not a duration.
      .filter((m) => !(m[1] === '--http-request-timeout-ms' && m[2] === '408'));
    expect(stated.length).toBeGreaterThan(12);
    for (const [, flag, n, unit] of stated) {
      expect(String(toUnit(flag!, Number(n!.replace(/,/g, '')), unit)), `${flag} (${n}${unit ? ` ${unit}` : ''})`).toBe(helpDefault(flag!));
    }
  });

  it('`--only` names bench parts the bench accepts', () => {
    const parts = /--only[^\n]*comma-separated: ([a-z,]+)/.exec(helpOf.get('bench')!)![1]!.split(',');
    const named = [...README.matchAll(/--only ([a-z]{2,}(?:,[a-z]{2,})*)/g)].flatMap((m) => m[1]!.split(','));
    expect(named.length).toBeGreaterThan(3);
    for (const p of named) expect(parts, `--only ${p}`).toContain(p);
  });

  it('the benchmark parts the README describes are the bench\'s parts, with the same letters', () => {
    // The README writes "what-if" where the part is called `whatif`.
    const described = [...README.matchAll(/^- \*\*\(([a-z])\) ([a-z-]+)\*\*/gm)].map((m) => `(${m[1]}) ${m[2]!.replace('-', '')}`);
    const listed = [...helpOf.get('bench')!.matchAll(/^ {2}(\([a-z]\) [a-z]+)/gm)].map((m) => m[1]!);
    expect(described.length).toBeGreaterThan(10);
    expect(described).toEqual(listed);
  });

  it('every EDGEPLANE_* variable the README names is a config option or read by the code', () => {
    const configEnvs = new Set((Object.keys(CONFIG_OPTIONS) as ConfigKey[]).map(envName));
    const sources = ['cli', 'shared', 'simulator', 'edge-agent', 'bin', 'broker', 'workers', 'api']
      .flatMap((d) => allFiles(join(ROOT, d)))
      .filter((f) => /\.(ts|js|mjs)$/.test(f) && !f.endsWith('.test.ts'));
    const read = new Set(sources.flatMap((f) => [...readFileSync(join(ROOT, f), 'utf8').matchAll(/process\.env\.(EDGEPLANE_[A-Z0-9_]+)/g)].map((m) => m[1]!)));
    const unknown = [...new Set([...README.matchAll(/\b(EDGEPLANE_[A-Z0-9_]*[A-Z0-9])\b/g)].map((m) => m[1]!))].filter((v) => !configEnvs.has(v) && !read.has(v));
    expect(unknown).toEqual([]);
  });
});

describe('README metrics', () => {
  it('every metric family the README names is declared, with the type its table gives, and served by /metrics', async () => {
    const res = await fetch(`${cp.cp.httpUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status).toBe(200);
    const served = new Map([...(await res.text()).matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const declared = METRIC_DEFINITIONS as Record<string, { type: string; help: string }>;
    const named = [...new Set([...README.matchAll(/`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?:\{[^`}]*\})?`/g)].map((m) => m[1]!))].filter(
      (n) => n in declared || /_(total|seconds)$/.test(n),
    );
    expect(named.length).toBeGreaterThan(40);
    for (const name of named) {
      expect(declared[name], `${name} is in shared/metric-definitions.ts`).toBeDefined();
      // Histograms appear once observed; the distributed roles' own gauges only in those roles.
      const servedLater = declared[name]!.type === 'histogram' || DISTRIBUTED_ONLY_GAUGES.has(name);
      if (!servedLater) expect(served.get(name), `${name} in an embedded control plane's /metrics`).toBe(declared[name]!.type);
    }
    for (const [family = '', type = ''] of tableRows('| family | type |')) {
      const names = [...family.matchAll(/`([a-z_*]+)(?:\{[^`]*\})?`/g)].map((m) => m[1]!);
      const types = type.split(', ');
      names.forEach((n, i) => {
        if (n.endsWith('_*')) expect([...served.keys()].some((s) => s.startsWith(n.slice(0, -1))), n).toBe(true);
        else expect(declared[n]?.type, n).toBe(types[Math.min(i, types.length - 1)]);
      });
    }
  });
});

describe('README REST routes', () => {
  interface Spec {
    paths: Record<string, Record<string, unknown>>;
  }
  let spec: Spec;
  beforeAll(async () => {
    spec = (await (await fetch(`${cp.cp.httpUrl}/openapi.json`)).json()) as Spec;
  });

  /** Whether the document has `path` (a concrete id or `{name}` matches any parameter) for `method`. */
  function has(method: string | undefined, path: string): boolean {
    const want = path.split('/');
    return Object.entries(spec.paths).some(([p, ops]) => {
      const segs = p.split('/');
      if (segs.length !== want.length) return false;
      const same = segs.every((s, i) => s === want[i] || (s.startsWith('{') && want[i] !== '' && !/^[a-z-]+$/.test(want[i]!)) || (s.startsWith('{') && want[i]!.startsWith('{')));
      return same && (method === undefined || method.toLowerCase() in ops);
    });
  }
  const full = (p: string) => (p.startsWith('/api/v1') || /^\/(healthz|readyz|metrics|ws\/|\.well-known)/.test(p) ? p : `/api/v1${p}`);

  it('every `METHOD /path` the README names is in the OpenAPI document', () => {
    const routes = [...README.matchAll(/\b(GET|POST|PUT|PATCH|DELETE) `?(\/[A-Za-z0-9_{}/.|-]*)/g)].flatMap((m) => {
      // `/dashboard/alerts/{id}/acknowledge|resolve`: one route per alternative of the last segment.
      const [head, last] = [m[2]!.slice(0, m[2]!.lastIndexOf('/') + 1), m[2]!.slice(m[2]!.lastIndexOf('/') + 1)];
      return last.split('|').map((alt) => ({ method: m[1]!, path: full((head + alt).replace(/\/$/, '')) }));
    });
    expect(routes.length).toBeGreaterThan(40);
    expect(routes.filter((r) => !has(r.method, r.path)).map((r) => `${r.method} ${r.path}`)).toEqual([]);
  });

  it('every `$API/…` path of the README examples is in the OpenAPI document', () => {
    const paths = [...README.matchAll(/\$API(\/[A-Za-z0-9_{}/.$-]*)/g)].map((m) => full(m[1]!.replace(/\$[A-Z_]+/g, 'X')));
    expect(paths.length).toBeGreaterThan(5);
    expect(paths.filter((p) => !has(undefined, p))).toEqual([]);
  });

  it('the resources the REST API section lists are routes', () => {
    const section = README.slice(README.indexOf('**Resources.**'), README.indexOf('**Alerts workflow.**'));
    // `/towers` (+ `/credentials`, `/carriers`): the parenthesised ones hang under the path before.
    const groups = [...section.matchAll(/\(\+ [^)]*\)/g)].map((g) => [g.index, g.index + g[0].length] as const);
    let base = '';
    const paths = [...section.matchAll(/`(?:[A-Z]+ )?(\/[a-z][A-Za-z0-9_{}/|-]*)(?:\?[^`]*)?`/g)].flatMap((m) => {
      const nested = groups.some(([from, to]) => m.index > from && m.index < to);
      if (!nested) base = m[1]!;
      const [head, last] = [m[1]!.slice(0, m[1]!.lastIndexOf('/') + 1), m[1]!.slice(m[1]!.lastIndexOf('/') + 1)];
      // A nested one is under the collection (`/sessions/totals`) or under one of its items (`/towers/{id}/credentials`).
      return last.split('|').map((alt) => (nested ? [base + head + alt, `${base}/{id}${head}${alt}`] : [head + alt]).map(full));
    });
    expect(paths.length).toBeGreaterThan(30);
    expect(paths.filter((candidates) => !candidates.some((p) => has(undefined, p))).map((c) => c.join(' or '))).toEqual([]);
  });

  it('/docs and /openapi.json answer', async () => {
    expect((await fetch(`${cp.cp.httpUrl}/docs`)).status).toBeLessThan(400);
    expect(Object.keys(spec.paths).length).toBeGreaterThan(50);
  });
});

describe('README MQTT contract', () => {
  it('the topic table lists exactly the topics shared/mqtt/topics.ts builds', () => {
    const shape = (topic: string) => topic.replace(/\{[^}]+\}/g, '*');
    const documented = tableRows('| topic | direction |').map(([topic = '']) => shape(/`([^`]+)`/.exec(topic)![1]!));
    const built = Object.entries(topics).map(([name, build]) => {
      // Every id level gets a marker; a bundle part number is the last argument of the *Part builders.
      const args = Array.from({ length: build.length }, (_, i) => (name.endsWith('Part') && i === build.length - 1 ? 7 : `id${i}`));
      return (build as (...a: Array<string | number>) => string)(...args).replace(/\bid\d\b|\b7$/g, '*');
    });
    expect([...documented].sort()).toEqual([...built].sort());
  });
});

describe('README file references', () => {
  it('every source file or folder the README names exists (a bare name: somewhere in the tree)', () => {
    const tree = [
      ...readdirSync(ROOT).filter((e) => statSync(join(ROOT, e)).isFile()),
      ...['api', 'broker', 'cli', 'shared', 'workers', 'edge-agent', 'simulator', 'test', 'web', 'docs', 'bin'].flatMap((d) => allFiles(join(ROOT, d))),
    ];
    // Build outputs (`dist/…`) are not in the tree until a build.
    const named = [...new Set([...README.matchAll(/`([A-Za-z0-9_-][A-Za-z0-9_.-]*(?:\/[A-Za-z0-9_.-]+)*\/?)`/g)].map((m) => m[1]!))].filter(
      (p) => !p.startsWith('dist/') && (/\.(ts|tsx|mjs|js)$/.test(p) || /^(api|broker|cli|shared|workers|edge-agent|simulator|test|web|docs|bin)\//.test(p)),
    );
    expect(named.length).toBeGreaterThan(100);
    const missing = named.filter((p) => !tree.some((f) => f === p.replace(/\/$/, '') || f.endsWith(`/${p}`) || f.startsWith(p.endsWith('/') ? p : `${p}/`)));
    expect(missing).toEqual([]);
  });
});

describe('docker-compose.yml', () => {
  it('passes each EdgePlane command only flags its --help lists', () => {
    const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
      services: Record<string, { image?: string; command?: string[] }>;
    };
    const ours = Object.entries(compose.services).filter(([, s]) => s.image?.startsWith('edgeplane:') && s.command);
    expect(ours.length).toBeGreaterThan(5);
    for (const [name, svc] of ours) {
      const [command, ...args] = svc.command!;
      for (const a of args.filter((x) => x.startsWith('--'))) expect(helpFlags(command!), `${name}: ${command} ${a}`).toContain(a);
    }
  });
});

/** Every file under `dir`, as a path relative to the repository root. */
function allFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : allFiles(p);
    return [relative(ROOT, p)];
  });
}

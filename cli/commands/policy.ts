/**
 * `edgeplane policy what-if`: a draft policy change replayed over a tenant's recorded usage, for
 * scripts and CI gates.
 *
 * It goes through the API (like `simulate`), not to the store directly: the API is where tenant
 * scoping, permissions (policies:simulate) and the audit trail are enforced, it works the same in
 * front of SQLite and MongoDB, and it needs no access to the server's data files or database
 * credentials — the replay still runs next to the data, and only the bounded summary (and, on
 * request, the streamed flips) crosses the network.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { DraftSchema } from '../../shared/policy/draft.js';
import type { Flip, WhatIfResult } from '../../shared/policy/what-if.js';
import { optionsHelp, parseCommandArgs, UsageError, type CommandOption } from '../args.js';
import { apiFetch } from '../../simulator/api-client.js';

const options: Record<string, CommandOption> = {
  tenant: { type: 'string', describe: 'Tenant id (picks the account at sign-in; must be the API key’s tenant)' },
  draft: { type: 'string', describe: 'Draft change set, a JSON file (- for stdin); see POST /policies/what-if in /docs' },
  since: { type: 'string', describe: 'Window start: a duration back from now (30m, 24h, 7d), an ISO date, or epoch ms' },
  until: { type: 'string', describe: 'Window end, same forms (default: now)' },
  'compare-to': { type: 'string', describe: 'current (flips against the live policy) or recorded (against what was decided)', default: 'current' },
  api: { type: 'string', describe: 'Control plane API base URL', default: 'http://127.0.0.1:8080' },
  email: { type: 'string', describe: 'Console user e-mail (env EDGEPLANE_EMAIL)' },
  password: { type: 'string', describe: 'Console user password (env EDGEPLANE_PASSWORD)' },
  'api-key': { type: 'string', describe: 'Tenant API key with policies:simulate, instead of e-mail/password (env EDGEPLANE_API_KEY)' },
  flips: { type: 'string', describe: 'Stream every flipped event to this file as NDJSON' },
  'sample-size': { type: 'string', describe: 'Flipped events listed in the summary', default: '10' },
  json: { type: 'boolean', describe: 'Print the result as JSON' },
  'fail-on-flips': { type: 'boolean', describe: 'Exit 3 when a decision flips or a stored policy test breaks' },
};

export const policyHelp = `Usage: edgeplane policy what-if --tenant <id> --draft <file> --since <when> [options]

Replays the tenant's usage recorded in the window through a draft policy change, with the same
compiled index as production, and reports the decisions that would flip (by user, app, action and
tower, with a sample), the alerts and remediations the draft would raise, the stored policy tests
it would break, and the replay time. Nothing is applied. Runs through the API: sign in with
--email/--password or use --api-key.

Exit codes: 0 done, 1 failed, 2 bad usage, 3 (with --fail-on-flips) flips or broken tests.

Options:
${optionsHelp(options)}
  -h, --help                   Show this help
`;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `24h` → now − 24 h; an ISO date; epoch ms. */
export function parseWhen(text: string, now: number, flag: string): number {
  const d = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  if (d) return now - Number(d[1]) * UNITS[d[2]!]!;
  if (/^\d+$/.test(text.trim())) return Number(text.trim());
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new UsageError(`--${flag}: not a duration (24h), an ISO date or epoch ms: ${JSON.stringify(text)}`);
  return t;
}

interface Auth {
  token: string;
}

async function call(api: string, auth: Auth | null, method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (auth) headers.authorization = `Bearer ${auth.token}`;
  return apiFetch(`${api.replace(/\/$/, '')}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function failure(res: Response, what: string): Promise<Error> {
  const text = await res.text();
  let message = text;
  try {
    message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
  } catch {
    // not JSON: keep the text
  }
  return new Error(`${what}: HTTP ${res.status}: ${message}`);
}

async function signIn(values: Record<string, string | boolean | undefined>, api: string, tenant: string): Promise<Auth> {
  const key = (values['api-key'] as string | undefined) ?? process.env.EDGEPLANE_API_KEY;
  if (key) return { token: key };
  const email = (values.email as string | undefined) ?? process.env.EDGEPLANE_EMAIL;
  const password = (values.password as string | undefined) ?? process.env.EDGEPLANE_PASSWORD;
  if (!email || !password) throw new UsageError('give --api-key (or EDGEPLANE_API_KEY), or --email and --password (or EDGEPLANE_EMAIL / EDGEPLANE_PASSWORD)');
  const res = await call(api, null, 'POST', '/auth/login', { email, password, tenant_id: tenant });
  if (!res.ok) throw await failure(res, 'sign-in');
  const token = ((await res.json()) as { access_token: string }).access_token;
  // The access token names its tenant (read, not verified: the API verifies it on every call).
  const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { tenant_id?: string | null };
  if (claims.tenant_id !== tenant) throw new Error(`signed in to ${claims.tenant_id ? `tenant ${claims.tenant_id}` : 'the platform'}, not tenant ${tenant}`);
  return { token };
}

async function readDraft(path: string): Promise<unknown> {
  let text: string;
  if (path === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    text = Buffer.concat(chunks).toString('utf8');
  } else {
    text = await readFile(path, 'utf8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--draft: not JSON: ${(err as Error).message}`);
  }
  const checked = DraftSchema.safeParse(parsed);
  if (!checked.success) {
    const first = checked.error.issues[0]!;
    throw new UsageError(`--draft: ${first.path.join('.') || '(root)'}: ${first.message}`);
  }
  return checked.data;
}

/** Reads the NDJSON answer: flips to `out` (awaiting its drain), the summary returned. */
async function readStream(res: Response, out: WriteStream): Promise<WhatIfResult> {
  if (!res.body) throw new Error('what-if: empty response');
  const decoder = new TextDecoder();
  let buffered = '';
  let summary: WhatIfResult | null = null;
  const handle = async (line: string): Promise<void> => {
    if (line.trim() === '') return;
    const msg = JSON.parse(line) as { type: string; error?: { message: string } } & Partial<WhatIfResult> & Partial<Flip>;
    if (msg.type === 'flip') {
      const { type: _type, ...flip } = msg;
      if (!out.write(`${JSON.stringify(flip)}\n`)) await once(out, 'drain');
    } else if (msg.type === 'summary') {
      const { type: _type, ...rest } = msg;
      summary = rest as WhatIfResult;
    } else if (msg.type === 'error') {
      throw new Error(`what-if: ${msg.error?.message ?? 'failed'}`);
    }
  };
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      await handle(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  }
  await handle(buffered);
  if (summary === null) throw new Error('what-if: the stream ended without a summary');
  return summary;
}

const n = (x: number): string => x.toLocaleString('en-US');

/** The answer as the API gives it: what the caller's permissions left out is named in `redacted`. */
type WhatIfReply = WhatIfResult & { redacted?: string[] };

export function formatWhatIf(r: WhatIfReply): string {
  const lines: string[] = [];
  const s = r.timing.replay_ms / 1000;
  lines.push(`what-if for tenant ${r.tenant_id}, ${new Date(r.window.since).toISOString()} → ${new Date(r.window.until).toISOString()}`);
  lines.push(`  compared with            ${r.compare_to === 'current' ? `the live policy (version ${r.base_version})` : 'the recorded decisions'}`);
  lines.push(`  events replayed          ${n(r.evaluated)} in ${s.toFixed(2)} s (${n(r.timing.events_per_s)} events/s)${r.resume_after ? `; stopped early, resume after ${r.resume_after}` : ''}`);
  lines.push(`  decisions flipped        ${n(r.flips.total)} (allow→deny ${n(r.flips.allow_to_deny)}, deny→allow ${n(r.flips.deny_to_allow)}); same effect by another rule ${n(r.flips.rule_changes)}`);
  for (const [label, rows] of [['user', r.flips.by_user], ['app', r.flips.by_app], ['action', r.flips.by_action], ['tower', r.flips.by_tower]] as const) {
    if (rows.length === 0) continue;
    lines.push(`  by ${label.padEnd(21)} ${rows.slice(0, 5).map((x) => `${x.key} +${x.allow_to_deny}/-${x.deny_to_allow}`).join(', ')}`);
  }
  const c = r.consequences;
  lines.push(`  alerts opened            ${n(c.draft.alerts_opened)} with the draft, ${n(c.baseline.alerts_opened)} without`);
  lines.push(
    c.auto_remediation
      ? `  remediations             ${n(c.draft.remediations)} with the draft (${n(c.draft.escalations)} escalations), ${n(c.baseline.remediations)} without`
      : '  remediations             none: the plan has no auto-remediation',
  );
  lines.push(`  policy tests             ${r.tests.total} stored: ${r.tests.broken.length} broken, ${r.tests.fixed.length} fixed by the draft`);
  for (const t of r.tests.broken) lines.push(`    broken: ${t.name} — expected ${t.expected.effect}, would be ${t.actual.effect}: ${t.summary}`);
  if (r.sample.length > 0) {
    lines.push('  sample of flipped events');
    for (const f of r.sample) {
      lines.push(`    ${f.event_id} ${f.device_id} ${f.app}/${f.action} @${f.tower_id}: ${f.before.effect} → ${f.after.effect}${f.after.rule_id ? ` (rule ${f.after.rule_id})` : ''}`);
    }
  }
  if (r.redacted && r.redacted.length > 0) {
    lines.push(`  left out                 what needs ${r.redacted.join(', ')}, which these credentials lack (flipped events and breakdowns: usage:read; test results: policies:read)`);
  }
  return lines.join('\n');
}

export async function policyCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(policyHelp);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'what-if') throw new UsageError(`unknown policy command '${sub}' (known: what-if)`);
  const { values } = parseCommandArgs(rest, options, false);
  if (values.help) {
    process.stdout.write(policyHelp);
    return 0;
  }
  for (const required of ['tenant', 'draft', 'since'] as const) {
    if (typeof values[required] !== 'string') throw new UsageError(`--${required} is required`);
  }
  const compareTo = values['compare-to'];
  if (compareTo !== 'current' && compareTo !== 'recorded') throw new UsageError('--compare-to must be current or recorded');
  const sampleSize = Number(values['sample-size']);
  if (!Number.isInteger(sampleSize) || sampleSize < 0 || sampleSize > 1000) throw new UsageError('--sample-size must be an integer 0..1000');
  const now = Date.now();
  const tenant = values.tenant as string;
  const body = {
    draft: await readDraft(values.draft as string),
    since: parseWhen(values.since as string, now, 'since'),
    ...(typeof values.until === 'string' && { until: parseWhen(values.until, now, 'until') }),
    compare_to: compareTo,
    sample_size: sampleSize,
  };
  const api = values.api as string;
  const auth = await signIn(values, api, tenant);

  let result: WhatIfReply;
  if (typeof values.flips === 'string') {
    const out = createWriteStream(values.flips);
    try {
      const res = await call(api, auth, 'POST', '/policies/what-if?stream=ndjson', body);
      if (!res.ok) throw await failure(res, 'what-if');
      result = await readStream(res, out);
    } finally {
      out.end();
      await once(out, 'close');
    }
  } else {
    const res = await call(api, auth, 'POST', '/policies/what-if', body);
    if (!res.ok) throw await failure(res, 'what-if');
    result = (await res.json()) as WhatIfReply;
  }
  // The API runs a what-if on the caller's own tenant; an API key of another tenant is refused here.
  if (result.tenant_id !== tenant) throw new Error(`the credentials are tenant ${result.tenant_id}'s, not ${tenant}'s`);
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatWhatIf(result)}\n`);
  if (values['fail-on-flips'] && (result.flips.total > 0 || result.tests.broken.length > 0)) return 3;
  // A gate that cannot see the stored tests' results does not pass: it says why.
  if (values['fail-on-flips'] && result.redacted?.includes('policies:read') && result.tests.total > 0) {
    process.stderr.write('edgeplane policy what-if: --fail-on-flips cannot tell whether stored policy tests break: these credentials lack policies:read\n');
    return 1;
  }
  return 0;
}

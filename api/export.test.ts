/**
 * Exports of /app-usage, /dashboard/alerts and /audit: JSON, CSV (RFC 4180) and XML, chosen by
 * ?format, Accept or ?export=true; every page walked; filters and tenant isolation kept; quoting
 * and escaping of hostile values; exports themselves audited.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord, UsageRecord } from '../shared/domain.js';
import { csvField, xmlEscape } from './export.js';
import { AlertSchema, UsageRecordSchema } from '../shared/schemas/records.js';
import { seedUsage, type SeedEvent } from './seed-usage.js';
import { OPERATOR_EMAIL, createTenant, json, login, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let owner: Session;
let ownerB: Session;
let tenantA: string;

/** Values a spreadsheet or an XML parser would choke on if they were not quoted/escaped. */
const NASTY_APP = 'a,b "quoted"\r\nnext line';
const FORMULA_ACTION = '=HYPERLINK("http://evil.test","x")';
const XML_DEVICE = 'dev-<&>\'"\u0001';

/** RFC 4180 parser (quoted fields with doubled quotes and line breaks), for checking round trips. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else {
      field += c;
    }
  }
  if (field !== '' || row.length > 0) throw new Error('CSV does not end with CRLF');
  return rows;
}

const XML_UNESCAPES: Record<string, string> = { '&lt;': '<', '&gt;': '>', '&quot;': '"', '&apos;': "'", '&amp;': '&', '&#13;': '\r' };

/** The rows of a flat export document: element name → text (null for xsi:nil). */
function parseXmlRows(xml: string, item: string): Array<Record<string, string | null>> {
  const rows: Array<Record<string, string | null>> = [];
  for (const m of xml.matchAll(new RegExp(`<${item}>(.*?)</${item}>`, 'gs'))) {
    const row: Record<string, string | null> = {};
    for (const f of m[1]!.matchAll(/<([a-z_]+)(?: xsi:nil="true"\/>|>([^<]*)<\/\1>)/g)) {
      row[f[1]!] = f[2] === undefined ? null : f[2].replace(/&(lt|gt|quot|apos|amp|#13);/g, (e) => XML_UNESCAPES[e]!);
    }
    rows.push(row);
  }
  return rows;
}

/** The CSV header: each name column right after the id it names. */
function withNames(columns: string[]): string[] {
  const names: Record<string, string> = { user_id: 'user_name', policy_id: 'policy_name', rule_id: 'rule' };
  return columns.flatMap((c) => (names[c] ? [c, names[c]] : [c]));
}

function get(session: Session, url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return h.app.inject({ method: 'GET', url, headers: { ...session.headers, ...headers } });
}

async function allUsage(tenantId: string): Promise<UsageRecord[]> {
  const out: UsageRecord[] = [];
  let cursor: string | null = null;
  do {
    const page = await h.store.usage.list(tenantId, { limit: 1000, cursor });
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return out;
}

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 100_000 });
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId: tenantA } = await createTenant(h.app, operator, 'Acme'));
  let tenantB: string;
  ({ owner: ownerB, tenantId: tenantB } = await createTenant(h.app, operator, 'Globex'));
  // 2,500 plain rows: three store pages of 1000.
  const plain: SeedEvent[] = Array.from({ length: 2500 }, (_, i) => ({
    device_id: `dev-${i % 7}`,
    app: 'slack',
    action: 'upload_file',
    effect: i % 5 === 0 ? 'deny' : 'allow',
  }));
  for (let i = 0; i < plain.length; i += 500) await seedUsage(h.store, tenantA, 'twr-1', plain.slice(i, i + 500), h.clock.now);
  await seedUsage(
    h.store,
    tenantA,
    'twr-2',
    [
      { device_id: XML_DEVICE, app: NASTY_APP, action: FORMULA_ACTION, effect: 'deny', rule_id: 'rule-1', policy_id: 'pol-1' },
      { device_id: 'dev-alert', app: 'dropbox', action: 'upload', effect: 'deny', rule_id: 'rule-2', policy_id: 'pol-1' },
    ],
    h.clock.now,
  );
  await seedUsage(h.store, tenantB, 'twr-9', [{ device_id: 'dev-globex', app: 'b-only-app', action: 'x', effect: 'allow' }], h.clock.now);
});
afterAll(async () => {
  await h.close();
});

describe('serializers', () => {
  it('quote CSV fields per RFC 4180 and defuse formulas', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\r\nlines')).toBe('"two\r\nlines"');
    expect(csvField(null)).toBe('');
    expect(csvField(-3)).toBe('-3');
    expect(csvField(false)).toBe('false');
    expect(csvField({ a: 1, b: 'x' })).toBe('"{""a"":1,""b"":""x""}"');
    expect(csvField('=1+1')).toBe("'=1+1");
    expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvField('-2+3,x')).toBe(`"'-2+3,x"`);
    // Spreadsheets trim leading whitespace and some read full-width signs as formulas too.
    expect(csvField(' =1+1')).toBe("' =1+1");
    expect(csvField('\t@SUM(A1)')).toBe("'\t@SUM(A1)");
    expect(csvField('\u3000+1')).toBe("'\u3000+1");
    for (const sign of ['\uFF1D', '\uFF0B', '\uFF0D', '\uFF20']) expect(csvField(`${sign}cmd|' /C calc'!A0`)).toBe(`'${sign}cmd|' /C calc'!A0`);
    expect(csvField('a =1')).toBe('a =1');
    expect(csvField('   ')).toBe('   ');
  });

  it('escape XML text and replace characters XML 1.0 cannot hold', () => {
    expect(xmlEscape(`<a href="x">&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;');
    expect(xmlEscape('bell\u0007 tab\t crlf\r\n')).toBe('bell\uFFFD tab\t crlf&#13;\n');
    expect(xmlEscape('lone \uD800 surrogate, pair \uD83D\uDE00')).toBe('lone \uFFFD surrogate, pair \uD83D\uDE00');
  });
});

describe('GET /app-usage exports', () => {
  it('CSV (?format=csv): header row, every row of every page in list order, hostile values round-trip', async () => {
    const res = await get(owner, '/api/v1/app-usage?format=csv');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/csv; charset=utf-8/);
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="app-usage-\d{8}T\d{6}Z\.csv"$/);
    expect(res.headers['vary']).toMatch(/accept/i);
    const rows = parseCsv(res.body);
    const expected = await allUsage(tenantA);
    const header = rows[0]!;
    expect(header).toEqual(withNames(Object.keys(UsageRecordSchema.shape)));
    expect(rows).toHaveLength(expected.length + 1);
    // ISO 8601 times, the same instants as the stored epoch milliseconds.
    const first = rows[1]!;
    expect(first[header.indexOf('ts')]).toBe(new Date(expected[0]!.ts).toISOString());
    expect(first[header.indexOf('received_at')]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(rows.slice(1).map((r) => r[header.indexOf('id')])).toEqual(expected.map((u) => u.id));
    const nasty = rows.find((r) => r[header.indexOf('app')] === NASTY_APP);
    expect(nasty, 'the quoted app round-trips').toBeDefined();
    expect(nasty![header.indexOf('action')]).toBe(`'${FORMULA_ACTION}`);
    expect(nasty![header.indexOf('device_id')]).toBe(XML_DEVICE);
    expect(nasty![header.indexOf('user_id')]).toBe('');
    expect(res.body).not.toContain('b-only-app');
  });

  it('XML (Accept: application/xml): escaped, nil for null, invalid characters replaced', async () => {
    const res = await get(owner, '/api/v1/app-usage', { accept: 'application/xml' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/xml; charset=utf-8');
    expect(res.headers['content-disposition']).toMatch(/\.xml"$/);
    expect(res.body.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<usage ')).toBe(true);
    expect(res.body.trimEnd().endsWith('</usage>')).toBe(true);
    // eslint-disable-next-line no-control-regex
    expect(res.body).not.toMatch(/[\u0000-\u0008]/);
    const rows = parseXmlRows(res.body, 'record');
    const expected = await allUsage(tenantA);
    expect(rows.map((r) => r.id)).toEqual(expected.map((u) => u.id));
    const nasty = rows.find((r) => r.app === NASTY_APP);
    expect(nasty).toMatchObject({ action: FORMULA_ACTION, device_id: 'dev-<&>\'"\uFFFD', user_id: null, effect: 'deny' });
    expect(rows[0]!.ts).toBe(new Date(expected[0]!.ts).toISOString());
    expect(res.body).toContain('<user_id xsi:nil="true"/>');
  });

  it('JSON (?export=true): one attachment holding every row, equal to the store', async () => {
    const res = await get(owner, '/api/v1/app-usage?export=true');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-disposition']).toMatch(/\.json"$/);
    const body = json<{ usage: UsageRecord[] }>(res);
    expect(Object.keys(body)).toEqual(['usage']);
    expect(body.usage).toEqual(await allUsage(tenantA));
  });

  it('filters apply to exports; a cursor starts the export there', async () => {
    const res = await get(owner, '/api/v1/app-usage?format=csv&effect=deny&device_id=dev-3');
    const rows = parseCsv(res.body);
    const header = rows[0]!;
    const expected = (await allUsage(tenantA)).filter((u) => u.effect === 'deny' && u.device_id === 'dev-3');
    expect(expected.length).toBeGreaterThan(0);
    expect(rows.slice(1).map((r) => r[header.indexOf('id')])).toEqual(expected.map((u) => u.id));

    const first = json<{ next_cursor: string }>(await get(owner, '/api/v1/app-usage?limit=100'));
    const rest = json<{ usage: UsageRecord[] }>(await get(owner, `/api/v1/app-usage?format=json&cursor=${first.next_cursor}`));
    expect(rest.usage).toEqual((await allUsage(tenantA)).slice(100));
  });

  it('default and browser requests get one JSON page, not a download', async () => {
    for (const accept of [undefined, 'application/json', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8']) {
      const res = await get(owner, '/api/v1/app-usage', accept ? { accept } : {});
      expect(res.headers['content-disposition']).toBeUndefined();
      const body = json<{ usage: unknown[]; next_cursor: string | null }>(res);
      expect(body.usage).toHaveLength(50);
      expect(body.next_cursor).not.toBeNull();
    }
    const csv = await get(owner, '/api/v1/app-usage', { accept: 'application/json;q=0.5, text/csv' });
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
  });

  it('isolation: another tenant exports only its own rows', async () => {
    const rows = parseCsv((await get(ownerB, '/api/v1/app-usage?format=csv')).body);
    expect(rows).toHaveLength(2);
    expect(rows[1]).toContain('b-only-app');
    const xml = (await get(ownerB, '/api/v1/app-usage?format=xml')).body;
    expect(parseXmlRows(xml, 'record')).toHaveLength(1);
    expect(xml).not.toContain('slack');
  });

  it('a bad cursor or format is a clean 400 before any download starts', async () => {
    const bad = await get(owner, '/api/v1/app-usage?format=csv&cursor=%25%25');
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['content-type']).toMatch(/^application\/json/);
    expect((await get(owner, '/api/v1/app-usage?format=pdf')).statusCode).toBe(400);
  });

  it('exports are audited with their format and filters', async () => {
    await get(owner, '/api/v1/app-usage?format=csv&effect=deny');
    await h.app.auditTrail.flush();
    const [entry] = (await h.store.audit.list(tenantA, { action: 'app-usage.export' })).items;
    expect(entry).toMatchObject({ method: 'GET', status_code: 200, resource_type: 'usage', after: { format: 'csv', filters: { effect: 'deny' } } });
  });
});

describe('GET /dashboard/alerts exports', () => {
  it('CSV, XML and JSON carry the same alerts as the list, with filters', async () => {
    const list = json<{ alerts: Array<{ id: string; status: string; device_id: string }> }>(await get(owner, '/api/v1/dashboard/alerts?limit=1000'));
    expect(list.alerts.length).toBeGreaterThanOrEqual(2);
    const ids = list.alerts.map((a) => a.id);

    const csv = parseCsv((await get(owner, '/api/v1/dashboard/alerts', { accept: 'text/csv' })).body);
    expect(csv[0]).toEqual(withNames(Object.keys(AlertSchema.shape)));
    expect(csv[1]![csv[0]!.indexOf('first_seen')]).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(csv.slice(1).map((r) => r[0])).toEqual(ids);

    const xmlRes = await get(owner, '/api/v1/dashboard/alerts?format=xml');
    expect(xmlRes.headers['content-disposition']).toMatch(/filename="alerts-.*\.xml"/);
    expect(parseXmlRows(xmlRes.body, 'alert').map((a) => a.id)).toEqual(ids);

    const filtered = json<{ alerts: Array<{ device_id: string }> }>(await get(owner, '/api/v1/dashboard/alerts?export=true&device_id=dev-alert'));
    expect(filtered.alerts.map((a) => a.device_id)).toEqual(['dev-alert']);
    expect(parseCsv((await get(ownerB, '/api/v1/dashboard/alerts?format=csv')).body)).toHaveLength(1);
  });
});

describe('names next to ids in CSV', () => {
  it('adds the user, policy and rule of each usage row and alert; XML and JSON keep the record shape', async () => {
    const operator = await login(h.app, OPERATOR_EMAIL);
    const { tenantId, owner: o } = await createTenant(h.app, operator, 'Names');
    const user = await h.store.users.create(tenantId, { name: '=Ada, "the" first', email: 'ada@names.test' });
    const policy = await h.store.policies.create(tenantId, { name: 'No uploads' });
    const rule = await h.store.rules.create(tenantId, { policy_id: policy.id, app: 'dropbox', action: 'upload', permission: 'deny' });
    await seedUsage(h.store, tenantId, 'twr-n', [
      { device_id: 'dev-n', user_id: user.id, app: 'dropbox', action: 'upload', effect: 'deny', rule_id: rule.id, policy_id: policy.id },
      { device_id: 'dev-n2', app: 'slack', action: 'open', effect: 'allow' },
    ], h.clock.now);
    const rows = parseCsv((await get(o, '/api/v1/app-usage?format=csv')).body);
    const header = rows[0]!;
    const col = (row: string[], name: string) => row[header.indexOf(name)];
    const denied = rows.find((r) => col(r, 'effect') === 'deny')!;
    expect(col(denied, 'user_name')).toBe(`'=Ada, "the" first`);
    expect(col(denied, 'policy_name')).toBe('No uploads');
    expect(col(denied, 'rule')).toBe('deny dropbox/upload');
    const allowed = rows.find((r) => col(r, 'effect') === 'allow')!;
    expect([col(allowed, 'user_name'), col(allowed, 'policy_name'), col(allowed, 'rule')]).toEqual(['', '', '']);

    const alerts = parseCsv((await get(o, '/api/v1/dashboard/alerts?format=csv')).body);
    expect(alerts).toHaveLength(2);
    expect(alerts[1]![alerts[0]!.indexOf('policy_name')]).toBe('No uploads');
    expect(alerts[1]![alerts[0]!.indexOf('rule')]).toBe('deny dropbox/upload');
    const xml = (await get(o, '/api/v1/app-usage?format=xml')).body;
    expect(xml).not.toContain('<user_name>');
  });
});

describe('GET /audit exports', () => {
  it('CSV and XML hold the tenant’s records, before/after as escaped JSON', async () => {
    await h.app.inject({ method: 'POST', url: '/api/v1/roles', headers: owner.headers, payload: { name: 'R <&> "1", two' } });
    await h.app.auditTrail.flush();
    const records: AuditRecord[] = (await h.store.audit.list(tenantA, { limit: 1000 })).items;

    const csv = parseCsv((await get(owner, '/api/v1/audit?format=csv')).body);
    const header = csv[0]!;
    expect(header).toContain('before');
    expect(csv.slice(1).map((r) => r[0])).toEqual(records.map((r) => r.id));
    const roleRow = csv.find((r) => r[header.indexOf('action')] === 'roles.create')!;
    expect(JSON.parse(roleRow[header.indexOf('after')]!)).toMatchObject({ name: 'R <&> "1", two' });

    const xml = (await get(owner, '/api/v1/audit?format=xml&action=roles.create')).body;
    const [row] = parseXmlRows(xml, 'record');
    expect(JSON.parse(row!.after!)).toMatchObject({ name: 'R <&> "1", two' });
    expect(row!.before).toBeNull();

    const other = parseCsv((await get(ownerB, '/api/v1/audit?format=csv')).body);
    const otherIds = new Set(other.slice(1).map((r) => r[0]));
    expect(records.some((r) => otherIds.has(r.id))).toBe(false);
  });
});

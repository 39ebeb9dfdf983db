/**
 * Streamed exports of list routes (usage, alerts, audit) as JSON, CSV (RFC 4180) or XML.
 *
 * A list answers one JSON page by default. An export is asked for explicitly — `?format=`,
 * `Accept: text/csv` / `application/xml`, or `?export=true` for JSON — and then walks every page
 * through the store's cursor (pages of 1000) into a Readable stream. The stream pulls the next
 * page only when the socket drained what it had (Readable.from over an async generator), so
 * memory stays at about one page whatever the row count, and a client that goes away stops the
 * walk. The first page is read before any header is sent, so a bad cursor is still a clean 400.
 * Each page is sent only once the caller's credential was authenticated again (one store read per
 * page, credential-recheck.ts): an export walking its pages when the key or session is revoked,
 * through any API process, stops at the next page; the response is cut (no final chunk, so
 * the client sees an incomplete download, never a complete-looking one) and counted in
 * `exports_cut_total`.
 *
 * Rows are written column by column from a fixed list (the record's response schema), so an
 * export can never carry a field the JSON response would have stripped.
 *
 * For people (CSV, XML), times are ISO 8601 UTC instead of epoch milliseconds; the JSON export
 * keeps the API's representation, so a program reads an export exactly as it reads a page. CSV,
 * the spreadsheet format, also carries the names next to the ids they stand for (user_name after
 * user_id, policy_name after policy_id, rule after rule_id), looked up per page.
 */
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Page } from '../shared/store/port.js';
import { credentialRecheck } from './credential-recheck.js';
import { BooleanQuery } from './schemas/common.js';

export type ExportFormat = 'json' | 'csv' | 'xml';

/** Store page size of an export: the largest page the store serves. */
export const EXPORT_PAGE_SIZE = 1000;

/** Query fields every exportable list accepts. */
export const exportQueryFields = {
  format: z
    .enum(['json', 'csv', 'xml'])
    .optional()
    .describe('export every matching row as a download in this format (overrides Accept)'),
  export: BooleanQuery.optional().describe(
    'true (or 1, yes): export every matching row as a JSON download; false (0, no): one page (the default)',
  ),
};

const CONTENT_TYPES: Record<ExportFormat, string> = {
  json: 'application/json; charset=utf-8',
  csv: 'text/csv; charset=utf-8; header=present',
  xml: 'application/xml; charset=utf-8',
};

const mediaTypeOf = (format: ExportFormat) => CONTENT_TYPES[format].split(';')[0]!;

/**
 * The documented 200 answer of an exportable list: its page of JSON, or the export sendExport
 * streams — `{ <name>: [rows] }` as JSON (the spec's `name`), CSV or XML. Without it the document
 * named only the page, and a client or gateway validating answers refused every export
 * (api/audit-openapi-conformance.test.ts).
 */
export function exportableListResponse(page: z.ZodType, name: string, row: z.ZodType) {
  return {
    description: 'A page of JSON; with a format (or export=true), every matching row as an attachment',
    content: {
      [mediaTypeOf('json')]: { schema: z.union([page, z.object({ [name]: z.array(row) }).describe('the JSON export: every matching row')]) },
      [mediaTypeOf('csv')]: { schema: z.string().describe('the CSV export (RFC 4180, a header row first, ISO 8601 UTC times)') },
      [mediaTypeOf('xml')]: { schema: z.string().describe(`the XML export: a <${name}> root, one element per row, ISO 8601 UTC times`) },
    },
  };
}

/** Media types of the Accept header, best first (RFC 9110 §12.5.1; ties keep header order). */
function acceptedTypes(accept: string): string[] {
  return accept
    .split(',')
    .map((part, index) => {
      const [type = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
      const q = params.find((p) => p.startsWith('q='));
      const weight = q === undefined ? 1 : Number(q.slice(2));
      return { type, weight: Number.isFinite(weight) ? weight : 0, index };
    })
    .filter((t) => t.type !== '' && t.weight > 0)
    .sort((a, b) => b.weight - a.weight || a.index - b.index)
    .map((t) => t.type);
}

/**
 * The export format the caller asked for, or null for the ordinary paged JSON answer. Only the
 * caller's most preferred media type counts: a browser's `text/html,…,application/xml;q=0.9`
 * gets the page, not a download.
 */
export function requestedExport(
  request: FastifyRequest,
  reply: FastifyReply,
  query: { format?: ExportFormat | undefined; export?: boolean | undefined },
): ExportFormat | null {
  // The answer depends on Accept: shared caches must key on it.
  reply.header('vary', 'accept');
  if (request.method === 'HEAD') return null;
  if (query.format !== undefined) return query.format;
  const best = acceptedTypes(request.headers.accept ?? '')[0];
  if (best === 'text/csv') return 'csv';
  if (best === 'application/xml' || best === 'text/xml') return 'xml';
  return query.export === true ? 'json' : null;
}

// ---- serializers -------------------------------------------------------------------------

/**
 * Spreadsheet apps run cells starting with these as formulas (CSV injection, OWASP), also after
 * leading whitespace (which they trim) and in their full-width forms (＝＋－＠, which some
 * normalise to ASCII).
 */
const FORMULA_START_RE = /^[\s\u3000]*[=+\-@\uFF1D\uFF0B\uFF0D\uFF20]|^[\t\r\n]/;
const CSV_QUOTE_RE = /[",\r\n]/;

function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return JSON.stringify(value) ?? '';
}

/**
 * One CSV field (RFC 4180 §2): quoted when it holds a quote, comma or line break, quotes doubled.
 * A string that a spreadsheet would evaluate is prefixed with an apostrophe: exports hold text
 * from outside callers (user agents, names), and opening one must not run it.
 */
export function csvField(value: unknown): string {
  let text = cellText(value);
  if (typeof value === 'string' && FORMULA_START_RE.test(text)) text = `'${text}`;
  return CSV_QUOTE_RE.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function csvRow(values: readonly unknown[]): string {
  return `${values.map(csvField).join(',')}\r\n`;
}

/** Characters XML 1.0 cannot carry at all (§2.2), lone surrogates included. */
// eslint-disable-next-line no-control-regex
const XML_INVALID_RE = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
/** CR as a reference: parsers normalise a literal CR LF to LF (§2.11), which would alter the value. */
const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;', '\r': '&#13;' };

export function xmlEscape(text: string): string {
  return text.replace(XML_INVALID_RE, '\uFFFD').replace(/[&<>"'\r]/g, (c) => XML_ESCAPES[c] ?? c);
}

function xmlElement(name: string, value: unknown): string {
  if (value === null || value === undefined) return `<${name} xsi:nil="true"/>`;
  return `<${name}>${xmlEscape(cellText(value))}</${name}>`;
}

/** Epoch milliseconds as ISO 8601 UTC (2026-01-31T12:00:00.000Z); anything else as it is. */
export function isoTime(value: unknown): unknown {
  return typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= 8.64e15 ? new Date(value).toISOString() : value;
}

/** Extra CSV columns, each right after the id column it names. */
export interface ExportLabels<T> {
  columns: ReadonlyArray<{ after: keyof T & string; name: string }>;
  /** One label object per row (same order), keyed by column name. */
  resolve: (rows: readonly T[]) => Promise<Array<Record<string, string | null>>>;
}

export interface ExportSpec<T> {
  /** JSON key and XML root element, e.g. 'usage'. */
  name: string;
  /** XML element of one row, e.g. 'record'. */
  item: string;
  /** Columns in order; names are snake_case field names, valid as XML element names. */
  columns: ReadonlyArray<keyof T & string>;
  /** File name without extension, e.g. 'app-usage'. */
  filename: string;
  /** One store page from `cursor` (null: the first). */
  fetchPage: (cursor: string | null) => Promise<Page<T>>;
  /** Epoch-ms columns, written as ISO 8601 in CSV and XML. */
  times?: ReadonlyArray<keyof T & string>;
  /** Names next to ids, in CSV. */
  labels?: ExportLabels<T>;
}

/** The CSV header: the columns, with each label column right after the id it names. */
function csvColumns<T>(spec: ExportSpec<T>): string[] {
  const out: string[] = [];
  for (const c of spec.columns) {
    out.push(c);
    for (const l of spec.labels?.columns ?? []) if (l.after === c) out.push(l.name);
  }
  return out;
}

function pick<T>(row: T, columns: ReadonlyArray<keyof T & string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const c of columns) out[c] = row[c] ?? null;
  return out;
}

async function serializePage<T>(format: ExportFormat, spec: ExportSpec<T>, rows: readonly T[], first: boolean): Promise<string> {
  const times: ReadonlySet<string> = new Set(spec.times ?? []);
  const cell = (r: T, c: keyof T & string): unknown => (times.has(c) ? isoTime(r[c]) : r[c]);
  if (format === 'csv') {
    const labels = spec.labels ? await spec.labels.resolve(rows) : [];
    const header = csvColumns(spec);
    return rows
      .map((r, i) => {
        const l = labels[i] ?? {};
        return csvRow(header.map((c) => (Object.hasOwn(l, c) ? l[c] : cell(r, c as keyof T & string))));
      })
      .join('');
  }
  if (format === 'xml') {
    return rows
      .map((r) => `  <${spec.item}>${spec.columns.map((c) => xmlElement(c, cell(r, c))).join('')}</${spec.item}>\n`)
      .join('');
  }
  const body = rows.map((r) => JSON.stringify(pick(r, spec.columns))).join(',\n');
  return first ? body : `,\n${body}`;
}

function opening(format: ExportFormat, spec: ExportSpec<unknown>): string {
  if (format === 'csv') return csvRow(csvColumns(spec));
  if (format === 'xml') {
    return (
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<${spec.name} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n`
    );
  }
  return `{${JSON.stringify(spec.name)}:[\n`;
}

function closing(format: ExportFormat, spec: ExportSpec<unknown>): string {
  if (format === 'csv') return '';
  return format === 'xml' ? `</${spec.name}>\n` : '\n]}\n';
}

/** The whole document, one page per chunk; the next page is read only when asked for. */
async function* exportChunks<T>(
  format: ExportFormat,
  spec: ExportSpec<T>,
  firstPage: Page<T>,
  authorized?: () => Promise<boolean>,
): AsyncGenerator<string> {
  yield opening(format, spec as ExportSpec<unknown>);
  let page = firstPage;
  let first = true;
  for (;;) {
    if (page.items.length > 0) {
      const chunk = await serializePage(format, spec, page.items, first);
      // Checked last, right before the page goes out.
      if (authorized && !(await authorized())) throw new Error('export cut: the credential was revoked');
      yield chunk;
      first = false;
    }
    if (page.next_cursor === null) break;
    page = await spec.fetchPage(page.next_cursor);
  }
  yield closing(format, spec as ExportSpec<unknown>);
}

/** Byte stream of the export; starts reading the store only when consumed. */
export function exportStream<T>(format: ExportFormat, spec: ExportSpec<T>, firstPage: Page<T>, authorized?: () => Promise<boolean>): Readable {
  return Readable.from(exportChunks(format, spec, firstPage, authorized), { objectMode: false, highWaterMark: 64 * 1024 });
}

/** `20250102T030405Z`: sortable and safe in a file name. */
function stamp(now: number): string {
  return new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/**
 * Answers the request with the export. `startCursor` lets a client resume an export (or export
 * from a page it is looking at); the first page is fetched before the headers go out.
 */
export async function sendExport<T>(
  reply: FastifyReply,
  format: ExportFormat,
  spec: ExportSpec<T>,
  opts: { now: number; startCursor: string | null },
): Promise<FastifyReply> {
  const firstPage = await spec.fetchPage(opts.startCursor);
  const recheck = credentialRecheck(reply.request);
  const counters = reply.server.counters;
  const authorized =
    recheck &&
    (async () => {
      if (await recheck.stillAuthorized()) return true;
      counters.inc('exports_cut_total', { reason: 'revoked' });
      return false;
    });
  const filename = `${spec.filename}-${stamp(opts.now)}.${format}`;
  return reply
    .code(200)
    .header('content-type', CONTENT_TYPES[format])
    .header('content-disposition', `attachment; filename="${filename}"`)
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff')
    .send(exportStream(format, spec, firstPage, authorized));
}

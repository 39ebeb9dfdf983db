/**
 * CSV request bodies (RFC 4180): a header line naming the columns, then one record per line.
 * Quoted fields may hold commas, doubled quotes and line breaks; CRLF or LF ends a record; a
 * UTF-8 byte order mark (what spreadsheets write) is dropped; blank lines are skipped. A malformed
 * file is refused naming the line, never guessed at.
 */
import { createError } from '../shared/errors.js';

function bad(line: number, message: string): never {
  throw createError('VALIDATION_FAILED', `body: CSV line ${line}: ${message}`, [{ field: 'body', message: `CSV line ${line}: ${message}` }]);
}

/** Records of `text` as arrays of fields, each with the line it starts on (1-based). */
export function parseCsvRecords(text: string): Array<{ line: number; fields: string[] }> {
  const records: Array<{ line: number; fields: string[] }> = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let afterQuote = false;
  let line = 1;
  let start = 1;
  const end = (): void => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '')) records.push({ line: start, fields });
    fields = [];
    field = '';
    afterQuote = false;
  };
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (quoted) {
      if (c === '"' && body[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
        afterQuote = true;
      } else {
        if (c === '\n') line++;
        field += c;
      }
      continue;
    }
    if (c === ',') {
      fields.push(field);
      field = '';
      afterQuote = false;
    } else if (c === '\r' || c === '\n') {
      if (c === '\r' && body[i + 1] === '\n') i++;
      end();
      line++;
      start = line;
    } else if (afterQuote) {
      bad(line, 'text after a closing quote (quote the whole field and double inner quotes)');
    } else if (c === '"') {
      if (field !== '') bad(line, 'a quote inside an unquoted field (quote the whole field and double inner quotes)');
      quoted = true;
    } else {
      field += c;
    }
  }
  if (quoted) bad(start, 'a quoted field is never closed');
  if (field !== '' || fields.length > 0) end();
  return records;
}

/**
 * Rows of a CSV table as objects keyed by the header's column names. Every column must be one of
 * `columns` (an unknown or misspelled column is refused by name, like a query parameter) and
 * every record must have as many fields as the header.
 */
export function parseCsvTable(text: string, columns: readonly string[]): { rows: Array<Record<string, string>>; lines: number[] } {
  const [header, ...records] = parseCsvRecords(text);
  if (header === undefined) bad(1, 'no header line');
  const names = header.fields.map((f) => f.trim());
  const unknown = names.filter((n) => !columns.includes(n));
  if (unknown.length > 0) {
    throw createError(
      'VALIDATION_FAILED',
      `body: unknown CSV column${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => `'${u}'`).join(', ')}; accepted: ${columns.join(', ')}`,
      unknown.map((u) => ({ field: `body.${u}`, message: `unknown column; accepted: ${columns.join(', ')}` })),
    );
  }
  const repeated = names.find((n, i) => names.indexOf(n) !== i);
  if (repeated !== undefined) bad(header.line, `column '${repeated}' appears twice`);
  const rows = records.map(({ line, fields }) => {
    if (fields.length !== names.length) bad(line, `${fields.length} fields, the header has ${names.length}`);
    return Object.fromEntries(names.map((n, i) => [n, fields[i]!]));
  });
  return { rows, lines: records.map((r) => r.line) };
}

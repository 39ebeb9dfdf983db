/**
 * Bulk onboarding: device users, their role assignments and their devices in one request, from a
 * JSON array or a CSV file (`content-type: text/csv`, header line first) of the same columns:
 *
 *   user_email, user_name, roles (names; "a;b" in CSV), device_id, device_name, device_os
 *
 * All or nothing: every row is validated (shape here, references in the store) and every problem
 * of every row comes back in one 400, fields `body.<row>.<column>` (CSV messages also give the
 * line); nothing is written unless the whole file is good. On success each row's outcome is
 * answered (created / updated / unchanged), so the same file can be imported again safely:
 * users are keyed by e-mail, devices by id, roles by name. `?dry_run=true` checks and answers the
 * outcomes without writing.
 */
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createError, isEdgeplaneError } from '../../shared/errors.js';
import { TopicId } from '../../shared/mqtt/payloads.js';
import type { DirectoryRow } from '../../shared/store/port.js';
import { audit } from '../audit.js';
import { holds } from '../auth/permissions.js';
import { principalOf, tenantIdOf } from '../auth/guard.js';
import { parseCsvTable } from '../csv-table.js';
import { BooleanQuery, errorResponses, humanName } from '../schemas/common.js';

/** Rows per request; a larger directory is imported in several requests (each all or nothing). */
export const MAX_IMPORT_ROWS = 50_000;
/** 50,000 rows of a few hundred bytes; the API's 1 MiB default would stop at a few thousand. */
const IMPORT_BODY_LIMIT = 32 * 1024 * 1024;

const COLUMNS = ['user_email', 'user_name', 'roles', 'device_id', 'device_name', 'device_os'] as const;

/** An empty cell (CSV) or string (JSON) means "not given". */
const cell = <T extends z.ZodType>(schema: T) => z.union([schema, z.literal('')]).optional();

const RowSchema = z
  .strictObject({
    user_email: cell(z.email().max(320)).describe("the device user's key (case-insensitive)"),
    user_name: cell(humanName()).describe('set on a new user; updates an existing one when different'),
    roles: z
      .union([z.array(z.string().trim().min(1).max(200)).max(100), z.string().max(20_000)])
      .optional()
      .describe('role names to assign (added, never removed); in CSV separated by ";"'),
    device_id: cell(TopicId).describe('the identifier towers report'),
    device_name: cell(humanName()),
    device_os: cell(humanName(100)),
  })
  .meta({ id: 'DirectoryRow' });

const ImportBody = z
  .array(RowSchema)
  .min(1)
  .max(MAX_IMPORT_ROWS)
  .meta({
    example: [
      { user_email: 'ada@acme.example', user_name: 'Ada Lovelace', roles: ['engineer', 'sales'], device_id: 'imei-356938035643809', device_name: 'Ada’s phone', device_os: 'android' },
      { user_email: 'ada@acme.example', device_id: 'imei-356938035643810' },
    ],
  });

const Outcome = z.enum(['created', 'updated', 'unchanged']);
const Counts = z.object({ created: z.number().int(), updated: z.number().int(), unchanged: z.number().int() });
const ImportReply = z
  .object({
    dry_run: z.boolean(),
    users: Counts,
    devices: Counts,
    role_assignments: z.object({ created: z.number().int(), unchanged: z.number().int() }),
    rows: z.array(
      z.object({
        row: z.number().int().describe('index in the input (0 = the first row after a CSV header)'),
        user: Outcome.nullable(),
        user_id: z.string().nullable(),
        device: Outcome.nullable(),
        device_id: z.string().nullable(),
        roles_added: z.number().int(),
      }),
    ),
  })
  .meta({ id: 'DirectoryImport' });

type RowInput = z.output<typeof RowSchema>;

const given = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);

function toDirectoryRow(r: RowInput): DirectoryRow {
  const roles = typeof r.roles === 'string' ? r.roles.split(';').map((x) => x.trim()).filter((x) => x !== '') : r.roles;
  return {
    user_email: given(r.user_email),
    user_name: given(r.user_name),
    roles: roles !== undefined && roles.length > 0 ? roles : undefined,
    device_id: given(r.device_id),
    device_name: given(r.device_name),
    device_os: given(r.device_os),
  };
}

/** CSV line of each row of a CSV request, for messages a person can act on. */
const csvLines = new WeakMap<FastifyRequest, number[]>();

/** The store names rows `rows.<i>`; the request calls them `body.<i>` (and, in CSV, a line). */
function located(err: unknown, lines: number[] | undefined): unknown {
  if (!isEdgeplaneError(err) || !err.issues) return err;
  const where = (field: string): string => field.replace(/^rows\.(\d+)/, 'body.$1');
  const onLine = (field: string): string => {
    const row = /^rows\.(\d+)/.exec(field)?.[1];
    const line = row === undefined ? undefined : lines?.[Number(row)];
    return line === undefined ? '' : ` (CSV line ${line})`;
  };
  const issues = err.issues.map((i) => ({ field: where(i.field), message: `${i.message}${onLine(i.field)}` }));
  const first = issues[0];
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''}); nothing was imported` : '; nothing was imported';
  return createError(err.code, first ? `${first.field}: ${first.message}${more}` : err.message, issues);
}

export const onboardingRoutes: FastifyPluginAsyncZod = async (app) => {
  // Encapsulated: only this plugin's routes read CSV bodies.
  app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: IMPORT_BODY_LIMIT }, (request, body, done) => {
    try {
      const { rows, lines } = parseCsvTable(typeof body === 'string' ? body : body.toString('utf8'), COLUMNS);
      csvLines.set(request, lines);
      done(null, rows);
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  app.post(
    '/onboarding/import',
    {
      bodyLimit: IMPORT_BODY_LIMIT,
      config: { permission: 'devices:write', audit: { action: 'onboarding.import', resource_type: 'directory' } },
      schema: {
        summary: 'Import device users, role assignments and devices in bulk (JSON array or CSV), all or nothing',
        description:
          `Up to ${MAX_IMPORT_ROWS} rows, as a JSON array or as \`text/csv\` with a header line of the same columns ` +
          `(${COLUMNS.join(', ')}; roles separated by ";"). Users are keyed by e-mail, devices by id, roles by name: ` +
          'new ones are created, given fields that differ are updated, role assignments and owners are only added. ' +
          'Every bad row is reported in one 400 and nothing is written; 403 PLAN_LIMIT_EXCEEDED if the new devices ' +
          "would pass the plan's max_devices. `?dry_run=true` answers the same without writing. Needs 'devices:write' and 'users:write'.",
        querystring: z.object({ dry_run: BooleanQuery.optional().describe('true: check and report, write nothing') }),
        consumes: ['application/json', 'text/csv'],
        body: ImportBody,
        response: { 200: ImportReply, ...errorResponses },
      },
    },
    async (request) => {
      if (!holds(principalOf(request), 'users:write')) throw createError('FORBIDDEN', "lacks permission 'users:write'");
      const tenantId = tenantIdOf(request);
      const dryRun = request.query.dry_run ?? false;
      try {
        const result = await app.store.directory.import(tenantId, request.body.map(toDirectoryRow), { dryRun });
        const { rows: _rows, ...summary } = result;
        audit(request, { after: { ...summary, rows: request.body.length } });
        return result;
      } catch (err) {
        throw located(err, csvLines.get(request));
      }
    },
  );
};

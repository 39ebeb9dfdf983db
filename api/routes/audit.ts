/**
 * The audit trail, read side: tenant owners and admins read their tenant's records; operators
 * read the platform's (tenant_id null: tenants, towers, carriers, plans, operator sign-ins). The
 * scope comes from the caller, never from the query. Exportable like the other bulk lists.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AuditRecord } from '../../shared/domain.js';
import type { AuditFilter } from '../../shared/store/port.js';
import { audit } from '../audit.js';
import { principalOf } from '../auth/guard.js';
import { EXPORT_PAGE_SIZE, exportQueryFields, exportableListResponse, requestedExport, sendExport } from '../export.js';
import {
  EpochMsSchema,
  IdParams,
  IdSchema,
  NextCursor,
  checkTimeRange,
  errorResponses,
  found,
  listQuery,
  paginate,
  sortQuery,
  timeRangeQuery,
} from '../schemas/common.js';

const ACTOR_KINDS = ['console_user', 'api_key', 'system'] as const;

export const AuditRecordSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string().nullable().describe('null: a platform-level record'),
    actor_kind: z.enum(ACTOR_KINDS),
    actor_id: z.string().nullable(),
    actor_label: z.string().nullable().describe('e-mail of the console user or name of the API key at the time'),
    action: z.string().describe("dotted verb, e.g. 'devices.create', 'auth.login', 'commands.applied'"),
    resource_type: z.string(),
    resource_id: z.string().nullable(),
    method: z.string().nullable(),
    path: z.string().nullable(),
    status_code: z.number().int().nullable().describe('the HTTP status answered: refused attempts are recorded too'),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    before: z.unknown().describe('the resource before the change (secrets redacted)'),
    after: z.unknown().describe('the resource after the change (secrets redacted)'),
    at: EpochMsSchema,
  })
  .meta({
    id: 'AuditRecord',
    example: {
      id: '01JGZ63K9N3P7Q1R5S9T3V7W1X',
      tenant_id: '01JGZ5Q8X3T0V8N2C6M4K7R9PA',
      actor_kind: 'console_user',
      actor_id: '01JGZ60G6J0K4L8M2N6P0Q4R8S',
      actor_label: 'owner@acme.example',
      action: 'devices.create',
      resource_type: 'device',
      resource_id: 'imei-356938035643809',
      method: 'POST',
      path: '/api/v1/devices',
      status_code: 201,
      ip: '203.0.113.7',
      user_agent: 'edgeplane-cli/0.1.0',
      before: null,
      after: { id: 'imei-356938035643809', name: 'ada_phone', os: 'android' },
      at: 1767225600000,
    },
  });

const AuditQuery = listQuery({
  actor_id: IdSchema.optional(),
  actor_kind: z.enum(ACTOR_KINDS).optional(),
  action: z.string().min(1).max(200).optional(),
  resource_type: z.string().min(1).max(100).optional(),
  resource_id: IdSchema.optional(),
  ...timeRangeQuery,
  ...sortQuery(['at']),
  ...exportQueryFields,
});

const AUDIT_COLUMNS = Object.keys(AuditRecordSchema.shape) as Array<keyof typeof AuditRecordSchema.shape>;

export const auditRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/audit',
    {
      config: { permission: 'audit:read' },
      schema: {
        summary: 'Audit records, newest first (tenant users: their tenant; operators: the platform)',
        description:
          'Filters: actor_id, actor_kind, action, resource_type, resource_id, since/until (epoch ms or ISO 8601; ' +
          'since inclusive, until exclusive); an unknown parameter is a 400 (app and severity do not apply to audit records). ' +
          'A page of JSON by default; `?format=csv|xml|json`, `Accept: text/csv` or `application/xml`, ' +
          'or `?export=true` stream every matching record as an attachment.',
        querystring: AuditQuery,
        response: {
          200: exportableListResponse(z.object({ records: z.array(AuditRecordSchema), next_cursor: NextCursor }), 'audit', AuditRecordSchema),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { tenantId } = principalOf(request);
      const q = request.query;
      checkTimeRange(q);
      const filters: AuditFilter = {
        ...(q.actor_id !== undefined && { actor_id: q.actor_id }),
        ...(q.actor_kind !== undefined && { actor_kind: q.actor_kind }),
        ...(q.action !== undefined && { action: q.action }),
        ...(q.resource_type !== undefined && { resource_type: q.resource_type }),
        ...(q.resource_id !== undefined && { resource_id: q.resource_id }),
        ...(q.since !== undefined && { since: q.since }),
        ...(q.until !== undefined && { until: q.until }),
      };
      const format = requestedExport(request, reply, q);
      if (format !== null) {
        audit(request, { action: 'audit.export', resource_type: 'audit', after: { format, filters } });
        return sendExport<AuditRecord>(
          reply,
          format,
          {
            name: 'audit',
            item: 'record',
            columns: AUDIT_COLUMNS,
            filename: 'audit',
            times: ['at'],
            fetchPage: (cursor) => app.store.audit.list(tenantId, { ...filters, limit: EXPORT_PAGE_SIZE, cursor }),
          },
          { now: app.clock(), startCursor: q.cursor ?? null },
        );
      }
      const page = await paginate(q, (o) => app.store.audit.list(tenantId, { ...o, ...filters }));
      return { records: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/audit/:id',
    {
      config: { permission: 'audit:read' },
      schema: {
        summary: 'One audit record',
        params: IdParams,
        response: { 200: z.object({ record: AuditRecordSchema }), ...errorResponses },
      },
    },
    async (request) => ({
      record: found(await app.store.audit.get(principalOf(request).tenantId, request.params.id), 'audit record'),
    }),
  );
};

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
/** Compiles only while the response schema matches the domain record it serializes. */
export type AuditSchemaMatchesDomain = Assert<Same<z.output<typeof AuditRecordSchema>, AuditRecord>>;

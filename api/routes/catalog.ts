/**
 * The tenant's app and action catalogues: the keys usage events and policy rules speak in. Both
 * have the same shape, so one plugin registers both, once per catalogue.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { CatalogKey } from '../../shared/mqtt/payloads.js';
import type { Store } from '../../shared/store/port.js';
import { recordCreate, deleteTenantRecord, recordUpdate } from '../audit.js';
import { tenantIdOf } from '../auth/guard.js';
import { IdParams, ListQuery, NextCursor, NoContent, errorResponses, found, humanName, paginate, sortQuery } from '../schemas/common.js';
import { ActionSchema, AppSchema } from '../../shared/schemas/records.js';

export interface CatalogRoutesOptions {
  /** 'apps' or 'actions': the URL segment, the store repository and the list key. */
  kind: 'apps' | 'actions';
}

const SINGULAR = { apps: 'app', actions: 'action' } as const;
const EXAMPLES = { apps: { key: 'slack', name: 'Slack' }, actions: { key: 'upload_file', name: 'Upload a file' } };

export const catalogRoutes: FastifyPluginAsyncZod<CatalogRoutesOptions> = async (app, opts) => {
  const { kind } = opts;
  const one = SINGULAR[kind];
  const repo = (store: Store) => (kind === 'apps' ? store.apps : store.actions);
  const ItemSchema = kind === 'apps' ? AppSchema : ActionSchema;
  const Reply = z.object({ [one]: ItemSchema });
  const ListReply = z.object({ [kind]: z.array(ItemSchema), next_cursor: NextCursor });
  const CreateBody = z
    .strictObject({ key: CatalogKey, name: humanName() })
    .meta({ example: EXAMPLES[kind] });
  const PatchBody = z.strictObject({ name: humanName().optional() }).meta({ example: { name: `${EXAMPLES[kind].name} (renamed)` } });

  app.post(
    `/${kind}`,
    {
      config: { permission: 'catalog:write', audit: { action: `${kind}.create`, resource_type: one } },
      schema: { summary: `Add to the ${one} catalogue`, body: CreateBody, response: { 201: Reply, ...errorResponses } },
    },
    async (request, reply) => {
      const created = await recordCreate(request, () => repo(app.store).create(tenantIdOf(request), request.body));
      return reply.code(201).send({ [one]: created });
    },
  );

  app.get(
    `/${kind}`,
    {
      config: { permission: 'catalog:read' },
      schema: { summary: `List the ${one} catalogue`, querystring: ListQuery.extend(sortQuery(['key'])), response: { 200: ListReply, ...errorResponses } },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const page = await paginate(request.query, (o) => repo(app.store).list(tenantId, o));
      return { [kind]: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    `/${kind}/:id`,
    {
      config: { permission: 'catalog:read' },
      schema: { summary: `Get an ${one}`, params: IdParams, response: { 200: Reply, ...errorResponses } },
    },
    async (request) => ({ [one]: found(await repo(app.store).get(tenantIdOf(request), request.params.id), one) }),
  );

  app.patch(
    `/${kind}/:id`,
    {
      config: { permission: 'catalog:write', audit: { action: `${kind}.update`, resource_type: one } },
      schema: { summary: `Rename an ${one}`, params: IdParams, body: PatchBody, response: { 200: Reply, ...errorResponses } },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      const updated = await recordUpdate(
        request,
        id,
        () => repo(app.store).get(tenantId, id),
        () => repo(app.store).update(tenantId, id, request.body),
      );
      return { [one]: found(updated, one) };
    },
  );

  app.delete(
    `/${kind}/:id`,
    {
      config: { permission: 'catalog:write', audit: { action: `${kind}.delete`, resource_type: one } },
      schema: { summary: `Remove an ${one}`, params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      await deleteTenantRecord(request, repo(app.store), tenantId, id, one);
      return reply.code(204).send();
    },
  );
};

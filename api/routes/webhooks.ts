/**
 * Webhooks: a tenant's HTTPS endpoints notified of alerts, remediation commands and discovered
 * devices. The signing secret is generated here and returned once, at creation; reads never carry
 * it (the response schemas strip it). Deliveries and their attempt history are readable per webhook.
 * Receivers verify requests with verifyWebhookSignature (shared/webhook-signature.ts).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { randomSecret } from '../../shared/auth/secrets.js';
import type { Webhook, WebhookDelivery, WebhookEventType } from '../../shared/domain.js';
import { recordCreate, deleteTenantRecord, recordUpdate } from '../audit.js';
import { tenantIdOf } from '../auth/guard.js';
import {
  EpochMsSchema,
  IdParams,
  ListQuery,
  NextCursor,
  NoContent,
  errorResponses,
  found,
  invalidField,
  paginate,
} from '../schemas/common.js';
import { targetProblem } from '../../shared/net/address-policy.js';

const WEBHOOK_EVENTS = ['alert.opened', 'alert.updated', 'alert.acknowledged', 'alert.assigned', 'alert.resolved', 'command.updated', 'device.discovered'] as const;
const WebhookEventSchema = z.enum(WEBHOOK_EVENTS);

const WebhookSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    url: z.string(),
    events: z.array(WebhookEventSchema),
    enabled: z.boolean(),
    created_at: EpochMsSchema,
    updated_at: EpochMsSchema,
  })
  .meta({
    id: 'Webhook',
    example: {
      id: '01JGZ62J8M2N6P0Q4R8S2T6V0W',
      tenant_id: '01JGZ5Q8X3T0V8N2C6M4K7R9PA',
      url: 'https://hooks.example.com/edgeplane',
      events: ['alert.opened', 'command.updated'],
      enabled: true,
      created_at: 1767225600000,
      updated_at: 1767229200000,
    },
  });

const WebhookDeliverySchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    webhook_id: z.string(),
    event: WebhookEventSchema,
    body: z.string().describe('the JSON body exactly as sent and signed'),
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.number().int().describe('attempts made so far'),
    next_attempt_at: EpochMsSchema.nullable().describe('when the next attempt is due (pending only)'),
    last_status_code: z.number().int().nullable().describe('HTTP status of the last attempt; null for network errors'),
    last_error: z.string().nullable(),
    created_at: EpochMsSchema,
    updated_at: EpochMsSchema,
  })
  .meta({ id: 'WebhookDelivery' });

const fields = {
  url: z
    .url({ protocol: /^https?$/, error: 'must be an http or https URL' })
    .max(2048)
    .describe('receives a signed POST per event'),
  events: z.array(WebhookEventSchema).min(1).max(WEBHOOK_EVENTS.length).describe('events to be notified of'),
};
const CreateWebhookBody = z
  .strictObject({ url: fields.url, events: fields.events })
  .meta({ example: { url: 'https://hooks.example.com/edgeplane', events: ['alert.opened', 'command.updated'] } });
const PatchWebhookBody = z.strictObject({
  url: fields.url.optional(),
  events: fields.events.optional(),
  enabled: z.boolean().optional().describe('false pauses deliveries (pending ones then fail)'),
}).meta({ example: { enabled: false } });
const WebhookReply = z.object({ webhook: WebhookSchema });
const CreatedWebhookReply = z
  .object({
    webhook: WebhookSchema,
    secret: z
      .string()
      .describe('signing secret, shown once: HMAC-SHA256 key of x-edgeplane-signature')
      .meta({ example: 'whsec_9b2f6e1a7c4d8e0f3a5b7c9d1e2f4a6b' }),
  })
  .meta({ id: 'CreatedWebhook' });

/**
 * Loopback, private, link-local (cloud metadata) and other internal targets, in any notation, and
 * local names are refused unless the operator allows private targets (--webhook-allow-private).
 * Names are resolved again at every delivery (workers/webhooks/webhook-transport.ts).
 */
function requirePublicTarget(url: string, allowPrivate: boolean): void {
  const problem = targetProblem(url, allowPrivate);
  if (problem !== null) invalidField('body.url', `${problem}; webhooks must target public addresses`);
}

/** Repeated event names are harmless; store each once. */
function unique(events: WebhookEventType[]): WebhookEventType[] {
  return [...new Set(events)];
}

export const webhookRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/webhooks',
    {
      config: { permission: 'webhooks:write', audit: { action: 'webhooks.create', resource_type: 'webhook' } },
      schema: {
        summary: 'Register a webhook (its signing secret is returned once)',
        description:
          'The URL must reach a public address: loopback, private, CGNAT, link-local (cloud metadata), ' +
          'unique-local, multicast and reserved addresses in any notation, and local names, are refused ' +
          '(400 naming body.url) unless the operator set --webhook-allow-private. Names are resolved ' +
          'again, and checked, at every delivery.',
        body: CreateWebhookBody,
        response: { 201: CreatedWebhookReply, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { url, events } = request.body;
      requirePublicTarget(url, app.apiOptions.webhookAllowPrivate);
      const secret = randomSecret();
      // The store's record carries no secret; only it enters the audit trail.
      const webhook = await recordCreate(request, () =>
        app.store.webhooks.create(tenantIdOf(request), { url, events: unique(events), secret }),
      );
      return reply.code(201).send({ webhook, secret });
    },
  );

  app.get(
    '/webhooks',
    {
      config: { permission: 'webhooks:read' },
      schema: {
        summary: 'List webhooks (never their secrets)',
        querystring: ListQuery,
        response: { 200: z.object({ webhooks: z.array(WebhookSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const page = await paginate(request.query, (o) => app.store.webhooks.list(tenantId, o));
      return { webhooks: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/webhooks/:id',
    {
      config: { permission: 'webhooks:read' },
      schema: { summary: 'Get a webhook', params: IdParams, response: { 200: WebhookReply, ...errorResponses } },
    },
    async (request) => ({
      webhook: found(await app.store.webhooks.get(tenantIdOf(request), request.params.id), 'webhook'),
    }),
  );

  app.patch(
    '/webhooks/:id',
    {
      config: { permission: 'webhooks:write', audit: { action: 'webhooks.update', resource_type: 'webhook' } },
      schema: {
        summary: 'Update a webhook (url, events, enabled)',
        params: IdParams,
        body: PatchWebhookBody,
        response: { 200: WebhookReply, ...errorResponses },
      },
    },
    async (request) => {
      const { events, ...rest } = request.body;
      if (rest.url !== undefined) requirePublicTarget(rest.url, app.apiOptions.webhookAllowPrivate);
      const patch = { ...rest, ...(events !== undefined && { events: unique(events) }) };
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      const webhook = await recordUpdate(
        request,
        id,
        () => app.store.webhooks.get(tenantId, id),
        () => app.store.webhooks.update(tenantId, id, patch),
      );
      return { webhook: found(webhook, 'webhook') };
    },
  );

  app.delete(
    '/webhooks/:id',
    {
      config: { permission: 'webhooks:write', audit: { action: 'webhooks.delete', resource_type: 'webhook' } },
      schema: { summary: 'Delete a webhook', params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      await deleteTenantRecord(request, app.store.webhooks, tenantId, id, 'webhook');
      return reply.code(204).send();
    },
  );

  app.get(
    '/webhooks/:id/deliveries',
    {
      config: { permission: 'webhooks:read' },
      schema: {
        summary: 'Deliveries of a webhook with their attempt history',
        params: IdParams,
        querystring: ListQuery,
        response: {
          200: z.object({ deliveries: z.array(WebhookDeliverySchema), next_cursor: NextCursor }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const webhook = found(await app.store.webhooks.get(tenantId, request.params.id), 'webhook');
      const page = await paginate(request.query, (o) => app.store.webhookDeliveries.list(tenantId, webhook.id, o));
      return { deliveries: page.items, next_cursor: page.next_cursor };
    },
  );
};

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
/** Compiles only while the response schemas match the domain records they serialize. */
export type WebhookSchemasMatchDomain = [
  Assert<Same<z.output<typeof WebhookSchema>, Webhook>>,
  Assert<Same<z.output<typeof WebhookDeliverySchema>, WebhookDelivery>>,
  Assert<Same<(typeof WEBHOOK_EVENTS)[number], WebhookEventType>>,
];

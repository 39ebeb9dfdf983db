/**
 * The alert workflow: acknowledge, assign (or unassign), resolve, each with an optional note.
 * The store applies the step and records it in the alert's history in one transaction, with its
 * webhook deliveries (shared/store/rules/alerts.ts has the transition table,
 * shared/store/rules/webhook-outbox.ts the outbox); the route then audits it and announces it on
 * the bus (alert.acknowledged / alert.assigned / alert.resolved), from where it reaches live
 * feeds and Firebase and wakes the webhook deliverer. Repeating a step that already holds answers 200 with
 * `changed: false` and announces nothing, so clients may retry freely.
 *
 * A resolved alert is closed: acknowledging or assigning it is a 409, and the next deny of the
 * same device and rule opens a new alert (the resolved one keeps its history).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ALERT_STEP_EVENTS } from '../../shared/bus-events.js';
import { createError } from '../../shared/errors.js';
import type { AlertAction, Store } from '../../shared/store/port.js';
import { audit } from '../audit.js';
import { principalOf, tenantIdOf } from '../auth/guard.js';
import { IdParams, errorResponses, found, invalidField, plainText } from '../schemas/common.js';
import { AlertEventSchema, AlertSchema } from '../../shared/schemas/records.js';

const note = z.string().trim().min(1).max(2000).superRefine(plainText).optional().describe('why: kept with the step in the alert’s history');
const NoteBody = z.strictObject({ note }).nullish().meta({ example: { note: 'Contractor confirmed; blocking upload rights' } });
const AssignBody = z
  .strictObject({
    assignee: z
      .string()
      .trim()
      .min(1)
      .max(320)
      .nullable()
      .describe("console user of the tenant: id, e-mail, or 'me'; null unassigns"),
    note,
  })
  .meta({ example: { assignee: 'analyst@acme.example', note: 'yours' } });
const StepReply = z.object({
  alert: AlertSchema,
  changed: z.boolean().describe('false when the step already held (nothing was recorded or announced)'),
});

/**
 * The console user id an assignee reference names: 'me' (the caller), an id or an e-mail of a
 * console user of the caller's tenant. Unknown: `strict` → 404 naming `field`, else the reference
 * itself (a filter that matches nothing).
 */
export async function assigneeOf(store: Store, request: FastifyRequest, ref: string, field: string, strict: boolean): Promise<string> {
  const principal = principalOf(request);
  if (ref === 'me') {
    if (principal.kind !== 'user') invalidField(field, "'me' needs a console user; an API key is nobody's");
    return principal.userId;
  }
  const tenantId = tenantIdOf(request);
  const byId = await store.consoleUsers.get(ref);
  // E-mails are unique per tenant only: pick this tenant's account among all that hold the e-mail
  // (findByEmail would answer another tenant's first, hiding ours and revealing theirs).
  const user =
    byId?.tenant_id === tenantId
      ? byId
      : ref.includes('@')
        ? (await store.consoleUsers.findAllByEmail(ref)).find((u) => u.tenant_id === tenantId)
        : null;
  if (user && user.tenant_id === tenantId) return user.id;
  if (strict) {
    throw createError('NOT_FOUND', `${field}: no such console user in this tenant`, [{ field, message: 'no such console user in this tenant' }]);
  }
  return ref;
}

export const alertRoutes: FastifyPluginAsyncZod = async (app) => {
  const step = async (request: FastifyRequest, id: string, action: AlertAction) => {
    const tenantId = tenantIdOf(request);
    const before = await app.store.alerts.get(tenantId, id);
    audit(request, { resource_id: id, before });
    const result = found(await app.store.alerts.act(tenantId, id, action), 'alert');
    audit(request, { after: result.alert });
    if (result.step !== null) {
      app.bus.publish(ALERT_STEP_EVENTS[result.step.kind], { tenant_id: tenantId, alert: result.alert, step: result.step });
    }
    return { alert: result.alert, changed: result.step !== null };
  };

  for (const kind of ['acknowledge', 'resolve'] as const) {
    app.post(
      `/dashboard/alerts/:id/${kind}`,
      {
        config: { permission: 'alerts:write', audit: { action: `alerts.${kind}`, resource_type: 'alert' } },
        schema: {
          summary: kind === 'acknowledge' ? 'Acknowledge an alert (someone is on it)' : 'Resolve an alert (a later deny opens a new one)',
          description:
            kind === 'acknowledge'
              ? 'open → acknowledged. An acknowledged alert still folds new denies. 409 on a resolved alert.'
              : 'open|acknowledged → resolved. The next deny of the same device and rule opens a new alert.',
          params: IdParams,
          body: NoteBody,
          response: { 200: StepReply, ...errorResponses },
        },
      },
      async (request) => step(request, request.params.id, { kind, by: principalOf(request).actorId, at: app.clock(), note: request.body?.note ?? null }),
    );
  }

  app.post(
    '/dashboard/alerts/:id/assign',
    {
      config: { permission: 'alerts:write', audit: { action: 'alerts.assign', resource_type: 'alert' } },
      schema: {
        summary: 'Assign an alert to a console user of the tenant (null unassigns)',
        description: '409 on a resolved alert; 404 when the assignee is not a console user of the tenant.',
        params: IdParams,
        body: AssignBody,
        response: { 200: StepReply, ...errorResponses },
      },
    },
    async (request) => {
      const { assignee: ref, note: text } = request.body;
      // 404 for an unknown alert comes before the assignee's: the alert is the resource.
      found(await app.store.alerts.get(tenantIdOf(request), request.params.id), 'alert');
      const assignee = ref === null ? null : await assigneeOf(app.store, request, ref, 'body.assignee', true);
      return step(request, request.params.id, { kind: 'assign', assignee, by: principalOf(request).actorId, at: app.clock(), note: text ?? null });
    },
  );

  app.get(
    '/dashboard/alerts/:id/events',
    {
      config: { permission: 'alerts:read' },
      schema: {
        summary: 'The workflow history of an alert, oldest first',
        params: IdParams,
        response: { 200: z.object({ alert_id: z.string(), events: z.array(AlertEventSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const alert = found(await app.store.alerts.get(tenantId, request.params.id), 'alert');
      return { alert_id: alert.id, events: await app.store.alerts.events(tenantId, alert.id) };
    },
  );
};

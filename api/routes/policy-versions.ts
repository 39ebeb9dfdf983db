/**
 * Policy versions (issue #12): every change that can alter a decision made a numbered version;
 * list them with who/when/what, read any version's content, diff two versions, restore one.
 *
 * Who: a restore records its caller on the version. Other versions are made by the ordinary
 * routes, which the audit trail records: a version is attributed to the successful write of the
 * same tenant recorded within ATTRIBUTION_WINDOW_MS after it, preferring one naming a resource the
 * version changed. Concurrent writers within that window can be attributed to each other's
 * version; the audit record itself stays exact, and `attributed_to.audit_id` points at it.
 *
 * A restore is a new version and propagates like any change: the store announces it (bus
 * `policy.changed`), workers rebuild their index and republish the retained bundle to towers.
 */
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createError } from '../../shared/errors.js';
import type { AuditRecord } from '../../shared/domain.js';
import type { PolicyContent } from '../../shared/policy/content.js';
import { diffVersions } from '../../shared/policy/version-diff.js';
import type { ChangeActor, PolicyVersionInfo } from '../../shared/store/port.js';
import type { HistoryKind } from '../../shared/store/rules/policy-history.js';
import { audit } from '../audit.js';
import { principalOf, tenantIdOf } from '../auth/guard.js';
import type { Permission } from '../auth/permissions.js';
import { lacking } from '../auth/reveal.js';
import { ListQuery, NextCursor, errorResponses, found } from '../schemas/common.js';
import type { PolicyContents } from './policy-contents.js';
import { VersionNumber } from './policy-explain.js';
import { AttributionSchema, PolicyContentSchema, PolicyVersionSchema, SettingsSchema, VersionDiffSchema } from './policy-schemas.js';

const ATTRIBUTION_WINDOW_MS = 5000;
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/**
 * Writes that change no input of a decision, so never made a policy version: signing in, out or
 * refreshing, one's own password, exports and download links, what-if runs, alerts, manual
 * commands, policy tests, webhooks, console accounts, credentials. Without this a tenant's first
 * version was attributed to its owner's first sign-in, which followed it within the window.
 */
const NEVER_A_POLICY_CHANGE = /^(auth|me|exports|alerts|remedial-actions|policy-tests|webhooks|console-users|carrier-credentials|tower-credentials|radius-clients)\.|\.(export|what-if)$/;

const VersionParams = z.object({ version: VersionNumber });
const VersionWithAttribution = PolicyVersionSchema.extend({ attributed_to: AttributionSchema });
const ListVersionsQuery = ListQuery.pick({ limit: true, cursor: true });
const DiffQuery = z.object({
  against: VersionNumber.optional().describe('the version to compare with; default the one before (nothing, for the first kept version)'),
});
const Redacted = z
  .array(z.string())
  .describe('permissions the caller lacks: rules (rules:read), role links (roles:read), user roles (users:read, roles:read) and device owners (devices:read) are left out')
  .meta({ example: [] });

/** The first kept version compared with nothing: its settings have no `before`. */
const DiffReply = z.object({
  diff: VersionDiffSchema.extend({
    settings: z.object({ before: SettingsSchema.nullable(), after: SettingsSchema }).nullable(),
  }),
  note: z.string().nullable(),
  redacted: Redacted,
});
const NotRestored = z.object({ kind: z.enum(['rule', 'role_policy', 'user_role', 'device', 'plan']), id: z.string(), reason: z.string() });
const RestoreReply = z
  .object({
    version: PolicyVersionSchema,
    created: z.boolean().describe('false when the tenant already had that content (no new version)'),
    not_restored: z.array(NotRestored),
  })
  .meta({
    example: {
      version: { version: 42, created_at: 1718000000000, change_count: 2, changes: [{ kind: 'rule', key: '01J9Z0RULE00000000000000R1', op: 'changed' }], restored_from: 37, actor: { kind: 'console_user', id: '01J9Z0CU0000000000000000OW', label: 'owner@acme.example' } },
      created: true,
      not_restored: [],
    },
  });

type Attribution = z.infer<typeof AttributionSchema>;

/**
 * The parts of a version beyond `policies:read` (the routes' own permission, which covers the
 * policies and settings) and what each needs: a key scoped to policies reads no rule, role link,
 * user's roles or device owner through the history. Every console role holds them all.
 */
const CONTENT_PARTS = [
  { list: 'rules', kind: 'rule', needs: ['rules:read'] },
  { list: 'role_policies', kind: 'role_policy', needs: ['roles:read'] },
  { list: 'user_roles', kind: 'user_role', needs: ['users:read', 'roles:read'] },
  { list: 'devices', kind: 'device', needs: ['devices:read'] },
] as const satisfies ReadonlyArray<{ list: keyof PolicyContent; kind: HistoryKind; needs: readonly Permission[] }>;
const CONTENT_PERMISSIONS: readonly Permission[] = [...new Set(CONTENT_PARTS.flatMap((p) => p.needs))];

/** What of the versions' contents the caller may read: the hidden parts and the change kinds they cover. */
function readable(request: FastifyRequest) {
  const redacted = lacking(principalOf(request), CONTENT_PERMISSIONS);
  const hidden = CONTENT_PARTS.filter((p) => p.needs.some((n) => redacted.includes(n)));
  const hiddenKinds = new Set<HistoryKind>(hidden.map((p) => p.kind));
  return {
    redacted,
    content: (c: PolicyContent): PolicyContent => (hidden.length === 0 ? c : { ...c, ...Object.fromEntries(hidden.map((p) => [p.list, []])) }),
    /** A version's change list without the keys of hidden kinds (device ids, user↔role pairs…); its count stays. */
    info: <V extends PolicyVersionInfo>(v: V): V => (hiddenKinds.size === 0 ? v : { ...v, changes: v.changes.filter((c) => !hiddenKinds.has(c.kind)) }),
  };
}

export const policyVersionRoutes: FastifyPluginAsyncZod<{ contents: PolicyContents }> = async (app, opts) => {
  const { contents } = opts;

  /** The audit record of the write that made each version without a recorded actor. */
  async function attribute(tenantId: string, versions: readonly PolicyVersionInfo[]): Promise<Map<number, Attribution>> {
    const out = new Map<number, Attribution>();
    const open = versions.filter((v) => v.actor === null && v.restored_from === null).sort((a, b) => a.version - b.version);
    if (open.length === 0) return out;
    const since = open[0]!.created_at;
    const until = open[open.length - 1]!.created_at + ATTRIBUTION_WINDOW_MS + 1;
    const entries: AuditRecord[] = [];
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof app.store.audit.list>> = await app.store.audit.list(tenantId, { since, until, limit: 1000, cursor });
      entries.push(
        ...page.items.filter((e) => e.status_code !== null && e.status_code < 400 && MUTATING.has(e.method ?? '') && !NEVER_A_POLICY_CHANGE.test(e.action)),
      );
      cursor = page.next_cursor;
    } while (cursor !== null && entries.length < 5000);
    entries.sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1));
    const used = new Set<string>();
    for (const v of open) {
      const candidates = entries.filter((e) => !used.has(e.id) && e.at >= v.created_at && e.at <= v.created_at + ATTRIBUTION_WINDOW_MS);
      const keys = new Set(v.changes.flatMap((c) => c.key.split('\u0000')));
      const pick = candidates.find((e) => e.resource_id !== null && keys.has(e.resource_id)) ?? candidates[0];
      if (!pick) continue;
      used.add(pick.id);
      out.set(v.version, { audit_id: pick.id, actor_kind: pick.actor_kind, actor_id: pick.actor_id, actor_label: pick.actor_label, action: pick.action });
    }
    return out;
  }

  app.get(
    '/policy-versions',
    {
      config: { permission: 'policies:read' },
      schema: {
        summary: 'Policy versions, newest first: when, who, what changed',
        querystring: ListVersionsQuery,
        response: {
          200: z.object({
            versions: z.array(VersionWithAttribution),
            next_cursor: NextCursor,
            history_starts_at: z.number().int().nullable().describe('the oldest version whose content is kept'),
            redacted: Redacted,
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const page = await app.store.policyVersions.list(tenantId, { limit: request.query.limit, cursor: request.query.cursor ?? null });
      const who = await attribute(tenantId, page.items);
      const storage = await app.store.policyVersions.storage(tenantId);
      const view = readable(request);
      return {
        // The added key first: `{ ...v, attributed_to }` takes V8's slow path per row (api/routes/devices.ts).
        versions: page.items.map((v) => ({ attributed_to: who.get(v.version) ?? null, ...view.info(v) })),
        next_cursor: page.next_cursor,
        history_starts_at: storage.first_version,
        redacted: view.redacted,
      };
    },
  );

  app.get(
    '/policy-versions/:version',
    {
      config: { permission: 'policies:read' },
      schema: {
        summary: 'One policy version: what it changed and its whole content (every decision input)',
        params: VersionParams,
        response: { 200: z.object({ version: VersionWithAttribution, content: PolicyContentSchema, redacted: Redacted }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const info = found(await app.store.policyVersions.get(tenantId, request.params.version), 'policy version');
      const content = await contents.at(tenantId, info.version, 'params.version');
      const who = await attribute(tenantId, [info]);
      const view = readable(request);
      return { version: { ...view.info(info), attributed_to: who.get(info.version) ?? null }, content: view.content(content), redacted: view.redacted };
    },
  );

  app.get(
    '/policy-versions/:version/diff',
    {
      config: { permission: 'policies:read' },
      schema: {
        summary: 'What differs between two policy versions (default: what this version changed)',
        description:
          'Without `against`, what this version changed: the diff from the version before. The first version whose ' +
          'content is kept (a new tenant\'s first version, or where an upgraded tenant\'s history starts) has nothing ' +
          'before it: its whole content is listed as added, `from` is 0, `settings.before` is null and `note` says so.',
        params: VersionParams,
        querystring: DiffQuery,
        response: { 200: DiffReply, ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { version } = request.params;
      const { against } = request.query;
      found(await app.store.policyVersions.get(tenantId, version), 'policy version');
      const { redacted, content: visible } = readable(request);
      const to = visible(await contents.at(tenantId, version, 'params.version'));
      if (against !== undefined) return { diff: diffVersions(visible(await contents.at(tenantId, against, 'query.against')), to), note: null, redacted };
      // The version before the first kept one has no content (a 422 naming a query parameter the
      // caller never sent, before) or is the version itself (an empty diff): compare with nothing.
      const { first_version } = await app.store.policyVersions.storage(tenantId);
      if (first_version === null || version <= first_version) {
        const diff = diffVersions({ ...to, version: 0, policies: [], rules: [], role_policies: [], user_roles: [], devices: [] }, to);
        return {
          diff: { ...diff, settings: { before: null, after: to.settings }, total: diff.total + 1 },
          note: `version ${version} is the first kept version: compared with nothing, its whole content is added`,
          redacted,
        };
      }
      return { diff: diffVersions(visible(await contents.at(tenantId, version - 1, 'params.version')), to), note: null, redacted };
    },
  );

  app.post(
    '/policy-versions/:version/restore',
    {
      config: { permission: 'policies:write', audit: { action: 'policy-versions.restore', resource_type: 'policy_version' } },
      schema: {
        summary: 'Restore a policy version: its content becomes current as a new version',
        description:
          'Rewrites rules, policies, role/user assignments, device owners and the default effect to the version’s content in one ' +
          'transaction. Deleted users, roles and devices are not resurrected (what refers to them is listed in not_restored), nor ' +
          'is the plan. The new version propagates like any change: workers rebuild, towers receive the new bundle.',
        params: VersionParams,
        response: { 200: RestoreReply, ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { version } = request.params;
      audit(request, { resource_id: String(version) });
      const principal = principalOf(request);
      // Carriers hold no policy permission; the guard never lets one reach this route.
      if (principal.kind === 'carrier') throw createError('FORBIDDEN', 'carriers cannot restore policies');
      const actor: ChangeActor =
        principal.kind === 'api_key'
          ? { kind: 'api_key', id: principal.keyId, label: principal.label }
          : { kind: 'console_user', id: principal.userId, label: (await app.store.consoleUsers.get(principal.userId))?.email ?? null };
      // Content missing: 404 for an unknown version of this tenant, 422 for one older than the history.
      found(await app.store.policyVersions.get(tenantId, version), 'policy version');
      await contents.at(tenantId, version, 'params.version');
      const result = found(await app.store.policyVersions.restore(tenantId, version, actor), 'policy version');
      audit(request, { after: { restored_from: version, version: result.version.version, created: result.created, not_restored: result.not_restored } });
      return result;
    },
  );
};

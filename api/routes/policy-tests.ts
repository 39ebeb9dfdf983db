/**
 * Stored policy test cases (issue #12): "this device / user doing app/action must be allowed or
 * denied (by this rule)". Run them against the live policy or any stored version; what-if reports
 * the ones a draft would break.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { EffectSchema } from '../../shared/mqtt/payloads.js';
import { MAX_POLICY_TESTS, runPolicyTests, type PolicyTest } from '../../shared/policy/policy-tests.js';
import { recordCreate, recordDelete, recordUpdate } from '../audit.js';
import { tenantIdOf } from '../auth/guard.js';
import { IdParams, IdSchema, NextCursor, NoContent, errorResponses, existed, found, humanName, listQuery, paginate } from '../schemas/common.js';
import type { PolicyContents } from './policy-contents.js';
import { VersionNumber } from './policy-explain.js';
import { PolicyTestRunSchema, PolicyTestSchema } from './policy-schemas.js';

const Name = z.string().trim().min(1).max(128);
const fields = {
  name: humanName(),
  device_id: IdSchema.nullable().describe('the device doing it (its owner’s roles decide); give this or user_id'),
  user_id: IdSchema.nullable().describe('the device user doing it'),
  app: Name,
  action: Name,
  expected_effect: EffectSchema,
  expected_rule_id: IdSchema.nullable().describe('when set, the decision must also name this rule'),
};
const CreateBody = z
  .strictObject({
    name: fields.name,
    device_id: fields.device_id.optional(),
    user_id: fields.user_id.optional(),
    app: fields.app,
    action: fields.action,
    expected_effect: fields.expected_effect,
    expected_rule_id: fields.expected_rule_id.optional(),
  })
  .meta({ example: { name: 'Jane cannot upload to Dropbox', user_id: '01J9Z0USER00000000000000JA', app: 'dropbox', action: 'upload', expected_effect: 'deny' } });
const PatchBody = z.strictObject({
  name: fields.name.optional(),
  device_id: fields.device_id.optional(),
  user_id: fields.user_id.optional(),
  app: fields.app.optional(),
  action: fields.action.optional(),
  expected_effect: fields.expected_effect.optional(),
  expected_rule_id: fields.expected_rule_id.optional(),
}).meta({ example: { expected_effect: 'allow' } });
const RunBody = z
  .strictObject({
    version: VersionNumber.optional().describe('a stored policy version; default the live policy'),
    test_ids: z.array(IdSchema).min(1).max(1000).optional().describe('only these tests; default all'),
  })
  .meta({ example: {} });
const TestReply = z.object({ policy_test: PolicyTestSchema });

export const policyTestRoutes: FastifyPluginAsyncZod<{ contents: PolicyContents }> = async (app, opts) => {
  const { contents } = opts;

  app.post(
    '/policy-tests',
    {
      config: { permission: 'policies:write', audit: { action: 'policy-tests.create', resource_type: 'policy_test' } },
      schema: {
        summary: 'Store a policy test case',
        description: `A tenant keeps at most ${MAX_POLICY_TESTS} tests (every run reads them all): 409 CONFLICT beyond.`,
        body: CreateBody,
        response: { 201: TestReply, ...errorResponses },
      },
    },
    async (request, reply) => {
      const policy_test = await recordCreate(request, () => app.store.policyTests.create(tenantIdOf(request), request.body));
      return reply.code(201).send({ policy_test });
    },
  );

  app.get(
    '/policy-tests',
    {
      config: { permission: 'policies:read' },
      schema: {
        summary: 'Stored policy test cases',
        querystring: listQuery({}),
        response: { 200: z.object({ policy_tests: z.array(PolicyTestSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const page = await paginate(request.query, (o) => app.store.policyTests.list(tenantIdOf(request), o));
      return { policy_tests: page.items, next_cursor: page.next_cursor };
    },
  );

  app.post(
    '/policy-tests/run',
    {
      config: { permission: 'policies:read' },
      schema: {
        summary: 'Run the stored policy tests against the live policy or a stored version',
        body: RunBody,
        response: { 200: PolicyTestRunSchema, ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { version, test_ids } = request.body;
      let tests: PolicyTest[] = [];
      if (test_ids !== undefined) {
        for (const [i, id] of test_ids.entries()) tests.push(found(await app.store.policyTests.get(tenantId, id), `body.test_ids.${i}: policy test`));
      } else {
        let cursor: string | null = null;
        do {
          const page: Awaited<ReturnType<typeof app.store.policyTests.list>> = await app.store.policyTests.list(tenantId, { limit: 1000, cursor });
          tests = tests.concat(page.items);
          cursor = page.next_cursor;
        } while (cursor !== null && tests.length < MAX_POLICY_TESTS);
      }
      const content = version === undefined ? (await contents.live(tenantId)).content : await contents.at(tenantId, version, 'body.version');
      return runPolicyTests(content, tests);
    },
  );

  app.get(
    '/policy-tests/:id',
    {
      config: { permission: 'policies:read' },
      schema: { summary: 'Get a policy test case', params: IdParams, response: { 200: TestReply, ...errorResponses } },
    },
    async (request) => ({ policy_test: found(await app.store.policyTests.get(tenantIdOf(request), request.params.id), 'policy test') }),
  );

  app.patch(
    '/policy-tests/:id',
    {
      config: { permission: 'policies:write', audit: { action: 'policy-tests.update', resource_type: 'policy_test' } },
      schema: { summary: 'Update a policy test case', params: IdParams, body: PatchBody, response: { 200: TestReply, ...errorResponses } },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      const updated = await recordUpdate(
        request,
        id,
        () => app.store.policyTests.get(tenantId, id),
        () => app.store.policyTests.update(tenantId, id, request.body),
      );
      return { policy_test: found(updated, 'policy test') };
    },
  );

  app.delete(
    '/policy-tests/:id',
    {
      config: { permission: 'policies:write', audit: { action: 'policy-tests.delete', resource_type: 'policy_test' } },
      schema: { summary: 'Delete a policy test case', params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      existed(
        await recordDelete(request, id, () => app.store.policyTests.get(tenantId, id), () => app.store.policyTests.delete(tenantId, id)),
        'policy test',
      );
      return reply.code(204).send();
    },
  );
};

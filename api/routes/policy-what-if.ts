/**
 * What-if (issue #12): the tenant's recorded usage of a window replayed through a draft change
 * set with the production index (shared/policy/what-if.ts). Read-only: the draft is applied in
 * memory; nothing is stored, announced or sent. Tenant-scoped like every route: the replay reads
 * only the caller's tenant's usage.
 *
 * Large results: the answer is bounded (counts, top keys, a sample); every flipped event can be
 * streamed as NDJSON (`?stream=ndjson` or `Accept: application/x-ndjson`: one `flip` line per
 * event, then the `summary` line), and `max_events` + `after` page through a huge window.
 *
 * The replayed events are recorded usage: like explanations and versions (auth/reveal.ts), a
 * caller without `usage:read` (an API key not given it) gets the counts and consequences but no
 * event, nor the per user/app/action/tower breakdowns that would rebuild them, and `redacted`
 * says so; the stored tests' results need `policies:read`, the permission that reads the tests.
 */
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createError, isEdgeplaneError } from '../../shared/errors.js';
import { applyDraft, DraftSchema } from '../../shared/policy/draft.js';
import { runWhatIf, type Flip, type WhatIfOptions, type WhatIfResult } from '../../shared/policy/what-if.js';
import { MAX_POLICY_TESTS, type PolicyTest } from '../../shared/policy/policy-tests.js';
import { BoundedRecheck, DEFAULT_RECHECK } from '../../shared/auth/bounded-recheck.js';
import { principalOf, tenantIdOf } from '../auth/guard.js';
import { credentialRecheck } from '../credential-recheck.js';
import type { Permission } from '../auth/permissions.js';
import { lacking } from '../auth/reveal.js';
import { errorResponses, invalidField } from '../schemas/common.js';
import type { PolicyContents } from './policy-contents.js';
import { WhatIfResultSchema } from './policy-schemas.js';

const WhatIfBody = z
  .strictObject({
    draft: DraftSchema,
    since: z.number().int().min(0).describe('window start (epoch ms, inclusive), on the server’s recording time'),
    until: z.number().int().min(0).optional().describe('window end (epoch ms, exclusive); default now'),
    compare_to: z
      .enum(['current', 'recorded'])
      .default('current')
      .describe('current: flips against the live policy (what the draft changes); recorded: against what was decided then'),
    sample_size: z.number().int().min(0).max(1000).default(50),
    max_events: z.number().int().min(1).max(1_000_000_000).optional().describe('stop after this many events (see resume_after)'),
    after: z.string().min(1).max(128).optional().describe('resume after this event id: the resume_after of a previous answer'),
  })
  .meta({
    example: {
      draft: { rules: { add: [{ policy_id: '01J9Z0POLICY0000000000000P', app: 'dropbox', action: 'upload', permission: 'deny' }] } },
      since: 1718000000000,
    },
  });

/** Read permissions guarding parts of the answer (the route's own permission aside). */
const WHAT_IF_PARTS: readonly Permission[] = ['usage:read', 'policies:read'];

const Redacted = z
  .array(z.string())
  .describe(
    'permissions the caller lacks: without usage:read no flipped event (sample, NDJSON flip lines) and no breakdown by user, app, action or tower; ' +
      'without policies:read no broken or fixed test results. Counts, consequences and test totals stay.',
  )
  .meta({ example: [] });

const WhatIfReply = WhatIfResultSchema.extend({ redacted: Redacted });
type WhatIfReply = z.output<typeof WhatIfReply>;

/** The answer as far as the caller may read it. */
function visible(result: WhatIfResult, redacted: readonly Permission[]): WhatIfReply {
  const events = !redacted.includes('usage:read');
  const tests = !redacted.includes('policies:read');
  return {
    ...result,
    flips: events ? result.flips : { ...result.flips, by_user: [], by_app: [], by_action: [], by_tower: [] },
    sample: events ? result.sample : [],
    tests: tests ? result.tests : { ...result.tests, broken: [], fixed: [] },
    redacted: [...redacted],
  };
}

const WhatIfQuery = z.object({ stream: z.enum(['ndjson']).optional().describe('stream every flipped event as NDJSON, then the summary') });

/** A what-if holds a core for as long as the window takes: one per tenant, two per API process. */
const MAX_RUNNING = 2;

function wantsStream(request: FastifyRequest, stream: string | undefined): boolean {
  if (stream === 'ndjson') return true;
  const accept = request.headers.accept ?? '';
  return accept.split(',')[0]?.trim().toLowerCase().startsWith('application/x-ndjson') ?? false;
}

/**
 * NDJSON out of a replay: flips are pushed as they are found, and the replay waits whenever the
 * socket has not taken what it was given (push() returned false), so memory stays bounded. The
 * replay stops when the stream is destroyed or `gone` aborts (the caller went away before it).
 */
function ndjson(run: (emit: (flip: Flip) => Promise<void>, signal: AbortSignal) => Promise<WhatIfReply>, gone: AbortSignal): Readable {
  const controller = new AbortController();
  let wake: (() => void) | null = null;
  const stream = new Readable({
    read() {
      wake?.();
      wake = null;
    },
    destroy(err, cb) {
      controller.abort(new Error('client went away'));
      wake?.();
      cb(err);
    },
  });
  const emit = async (flip: Flip): Promise<void> => {
    if (stream.destroyed) return;
    if (!stream.push(`${JSON.stringify({ type: 'flip', ...flip })}\n`)) await new Promise<void>((resolve) => (wake = resolve));
  };
  run(emit, AbortSignal.any([controller.signal, gone])).then(
    (summary) => {
      if (stream.destroyed) return;
      stream.push(`${JSON.stringify({ type: 'summary', ...summary })}\n`);
      stream.push(null);
    },
    (err: unknown) => {
      if (stream.destroyed) return;
      // The status line is gone: the error travels as the last line.
      const error = isEdgeplaneError(err) ? { code: err.code, message: err.message } : { code: 'INTERNAL', message: 'what-if failed' };
      stream.push(`${JSON.stringify({ type: 'error', error })}\n`);
      stream.push(null);
    },
  );
  return stream;
}

/** Streams bypass the response schema (it describes the JSON answer); the reply is untyped here. */
function sendNdjson(reply: FastifyReply, stream: Readable): FastifyReply {
  return reply.code(200).header('content-type', 'application/x-ndjson; charset=utf-8').header('cache-control', 'no-store').send(stream);
}

export const policyWhatIfRoutes: FastifyPluginAsyncZod<{ contents: PolicyContents }> = async (app, opts) => {
  const { contents } = opts;
  const running = new Set<string>();

  app.post(
    '/policies/what-if',
    {
      config: { permission: 'policies:simulate', audit: { action: 'policies.what-if', resource_type: 'policy' } },
      schema: {
        summary: 'Replay recorded usage through a draft policy change (nothing is applied)',
        description:
          'Decides the tenant’s usage recorded in [since, until) again with the draft applied, using the same compiled index as ' +
          'production, and reports flipped decisions with counts by user/app/action/tower, a sample, the alerts and remediations ' +
          'each side would have raised, the stored policy tests the draft breaks, and the replay time. `?stream=ndjson` streams ' +
          'every flip, then the summary. Flipped events and their breakdowns need usage:read, test results policies:read ' +
          '(every console role that may run a what-if holds both; an API key needs those scopes): `redacted` names what was left out.',
        body: WhatIfBody,
        querystring: WhatIfQuery,
        response: { 200: WhatIfReply, ...errorResponses },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const redacted = lacking(principalOf(request), WHAT_IF_PARTS);
      const body = request.body;
      const until = body.until ?? app.clock();
      if (until <= body.since) invalidField('body.until', 'must be after since');
      if (running.has(tenantId) || running.size >= MAX_RUNNING) {
        void reply.header('retry-after', '5');
        throw createError('RATE_LIMITED', 'a what-if is already running for this tenant (or this API process is busy with others); try again shortly');
      }
      running.add(tenantId);
      // Watched from here, not from the replay's start: a caller gone while the draft's references
      // and the tests are read (seconds on a remote store) must not have the window replayed for nobody.
      const gone = new AbortController();
      const onClose = () => {
        if (!reply.raw.writableFinished) gone.abort(new Error('client went away'));
      };
      reply.raw.once('close', onClose);
      let handedToStream = false;
      try {
        const { content: base, alertWindowS } = await contents.live(tenantId);
        const draft = applyDraft(base, body.draft, await contents.draftReferences(tenantId, body.draft), 'body.draft');
        const tests = await allTests(tenantId);
        const window = { since: body.since, until };
        const options = (signal: AbortSignal, onFlip?: (f: Flip) => Promise<void>): WhatIfOptions => ({
          tenantId,
          base,
          draft,
          compareTo: body.compare_to,
          window,
          alertWindowS,
          tests,
          // Bound to the caller's tenant here: nothing the body says can widen what is read.
          scan: (after, limit) => app.store.usageHistory.scan(tenantId, window, after, limit),
          sampleSize: body.sample_size,
          ...(body.max_events !== undefined && { maxEvents: body.max_events }),
          ...(body.after !== undefined && { after: body.after }),
          ...(onFlip && { onFlip }),
          signal,
        });
        if (wantsStream(request, request.query.stream)) {
          // A stream of recorded usage goes on only while its credential stands: re-authenticated
          // at least every second or every 1,000 flips (credential-recheck.ts), so a revocation made
          // meanwhile, through any API process, ends it with an error line.
          const recheck = credentialRecheck(request);
          const authority =
            recheck && new BoundedRecheck({ read: recheck.stillAuthorized, now: app.clock, intervalMs: DEFAULT_RECHECK.intervalMs, everySteps: 1_000, readAt: app.clock() });
          const stream = ndjson(
            (emit, signal) =>
              // Without usage:read no flip is handed out: the replay runs for the summary alone.
              runWhatIf(
                options(
                  signal,
                  redacted.includes('usage:read')
                    ? undefined
                    : async (flip) => {
                        if (authority && !(await authority.stillValid())) {
                          throw createError('UNAUTHENTICATED', 'the credential was revoked while the what-if streamed: the replay stopped');
                        }
                        await emit(flip);
                      },
                ),
              )
                .then((result) => visible(result, redacted))
                .finally(() => {
                  reply.raw.off('close', onClose);
                  running.delete(tenantId);
                }),
            gone.signal,
          );
          handedToStream = true;
          return sendNdjson(reply, stream);
        }
        return visible(await runWhatIf(options(gone.signal)), redacted);
      } finally {
        if (!handedToStream) {
          reply.raw.off('close', onClose);
          running.delete(tenantId);
        }
      }
    },
  );

  async function allTests(tenantId: string): Promise<PolicyTest[]> {
    const tests: PolicyTest[] = [];
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof app.store.policyTests.list>> = await app.store.policyTests.list(tenantId, { limit: 1000, cursor });
      tests.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor !== null && tests.length < MAX_POLICY_TESTS);
    return tests;
  }
};

/**
 * The policy lifecycle resources (issue #12) — explain, what-if, versions, tests — registered
 * together so they share one cache of stored versions' contents (per API process).
 */
import type { FastifyPluginAsync } from 'fastify';
import { PolicyContents } from './policy-contents.js';
import { policyExplainRoutes } from './policy-explain.js';
import { policyTestRoutes } from './policy-tests.js';
import { policyVersionRoutes } from './policy-versions.js';
import { policyWhatIfRoutes } from './policy-what-if.js';

export const policyLifecycleRoutes: FastifyPluginAsync = async (app) => {
  const contents = new PolicyContents(app.store);
  await app.register(policyExplainRoutes, { contents });
  await app.register(policyWhatIfRoutes, { contents });
  await app.register(policyVersionRoutes, { contents });
  await app.register(policyTestRoutes, { contents });
};

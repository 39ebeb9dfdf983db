/** Every resource plugin, each encapsulated; mounted under /api/v1 by app.ts. */
import type { FastifyPluginAsync } from 'fastify';
import type { ApiDeps } from '../types.js';
import { apiKeyRoutes } from './api-keys.js';
import { assignmentRoutes } from './assignments.js';
import { auditRoutes } from './audit.js';
import { carrierRoutes } from './carriers.js';
import { catalogRoutes } from './catalog.js';
import { consoleUserRoutes } from './console-users.js';
import { dashboardRoutes } from './dashboard.js';
import { deviceRoutes } from './devices.js';
import { nestedRoutes } from './nested.js';
import { planRoutes } from './plans.js';
import { policyRoutes } from './policies.js';
import { policyRuleRoutes } from './policy-rules.js';
import { remediationRoutes } from './remediation.js';
import { signingKeyRoutes } from './signing-keys.js';
import { tenantRoutes } from './tenants.js';
import { towerCredentialRoutes } from './tower-credentials.js';
import { towerRoutes } from './towers.js';
import { usageRoutes } from './usage.js';
import { usersRolesRoutes } from './users-roles.js';
import { webhookRoutes } from './webhooks.js';

export interface ApiRoutesOptions {
  config: ApiDeps['config'];
}

export const apiRoutes: FastifyPluginAsync<ApiRoutesOptions> = async (app, opts) => {
  await app.register(tenantRoutes);
  await app.register(planRoutes);
  await app.register(consoleUserRoutes);
  await app.register(usersRolesRoutes, { kind: 'users' });
  await app.register(usersRolesRoutes, { kind: 'roles' });
  await app.register(assignmentRoutes);
  await app.register(policyRoutes);
  await app.register(policyRuleRoutes);
  await app.register(catalogRoutes, { kind: 'apps' });
  await app.register(catalogRoutes, { kind: 'actions' });
  await app.register(deviceRoutes);
  await app.register(towerRoutes);
  await app.register(towerCredentialRoutes);
  await app.register(carrierRoutes);
  await app.register(usageRoutes);
  await app.register(webhookRoutes);
  await app.register(dashboardRoutes);
  await app.register(remediationRoutes, { commandTtlS: opts.config.command_ttl_s });
  await app.register(nestedRoutes);
  await app.register(auditRoutes);
  await app.register(apiKeyRoutes);
  await app.register(signingKeyRoutes);
};

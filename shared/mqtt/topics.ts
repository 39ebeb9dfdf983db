/**
 * The only module that knows topic strings. Every topic has a builder, is recognised by
 * `parseTopic`, and has its ACL pattern here, next to the payload schema it carries.
 * Anything else in the code base builds or inspects topics through these functions.
 */
import { TOPIC_ID_RE } from '../ids.js';
import { CarrierDeviceFeedSchema, CarrierTowerFeedSchema, FeedResultSchema } from './carrier-payloads.js';
import { z } from 'zod';
import {
  CommandAckSchema,
  CommandSchema,
  DecisionBatchSchema,
  DirectoryHeadSchema,
  DirectoryPartSchema,
  DiscoveryBatchSchema,
  PolicyBundlePartSchema,
  PolicyBundleSchema,
  TowerStatusSchema,
  UsageBatchSchema,
} from './payloads.js';
import { SessionBatchSchema } from './session-payloads.js';

export const TOPIC_SPECS = {
  usage: { pattern: 'tenants/{tenantId}/towers/{towerId}/usage', direction: 'uplink', qos: 1, retain: false, schema: UsageBatchSchema },
  discovery: { pattern: 'towers/{towerId}/discovery', direction: 'uplink', qos: 1, retain: false, schema: DiscoveryBatchSchema },
  status: { pattern: 'towers/{towerId}/status', direction: 'uplink', qos: 1, retain: true, schema: TowerStatusSchema },
  decisions: { pattern: 'tenants/{tenantId}/towers/{towerId}/decisions', direction: 'downlink', qos: 1, retain: false, schema: DecisionBatchSchema },
  commands: { pattern: 'tenants/{tenantId}/towers/{towerId}/commands', direction: 'downlink', qos: 1, retain: false, schema: CommandSchema },
  acks: { pattern: 'tenants/{tenantId}/towers/{towerId}/acks', direction: 'uplink', qos: 1, retain: false, schema: CommandAckSchema },
  // Edge bundles (least privilege): a tenant's policy only for towers that serve it, and the
  // device directory for every tower (keyed hashes; edge-bundle.ts).
  policy: { pattern: 'tenants/{tenantId}/towers/{towerId}/policy', direction: 'downlink', qos: 1, retain: true, schema: PolicyBundleSchema },
  policyPart: { pattern: 'tenants/{tenantId}/towers/{towerId}/policy/{part}', direction: 'downlink', qos: 1, retain: true, schema: PolicyBundlePartSchema },
  directory: { pattern: 'directory/{token}', direction: 'downlink', qos: 1, retain: true, schema: DirectoryHeadSchema },
  directoryPart: { pattern: 'directory/{token}/{part}', direction: 'downlink', qos: 1, retain: true, schema: DirectoryPartSchema },
  // Where releases before bundle schema 2 kept every tenant's whole bundle for every tower. Only
  // ever published empty (clearing what an older release retained); no tower may subscribe.
  legacyPolicy: { pattern: 'tenants/{tenantId}/policy', direction: 'downlink', qos: 1, retain: true, schema: z.literal('') },
  /** Accounting sessions at a tower (RADIUS plugin, or a tower reporting its own). */
  sessions: { pattern: 'towers/{towerId}/sessions', direction: 'uplink', qos: 1, retain: false, schema: SessionBatchSchema },
  /** A carrier's tower metadata feed: towers added/updated/retired, coverage, who serves them. */
  carrierTowers: { pattern: 'carriers/{carrierId}/feeds/towers', direction: 'uplink', qos: 1, retain: false, schema: CarrierTowerFeedSchema },
  /** A carrier's device metadata feed: device id → OS, model, device type. */
  carrierDevices: { pattern: 'carriers/{carrierId}/feeds/devices', direction: 'uplink', qos: 1, retain: false, schema: CarrierDeviceFeedSchema },
  /** One result per feed message: what was applied and what was refused, record by record. */
  carrierResults: { pattern: 'carriers/{carrierId}/feeds/results', direction: 'downlink', qos: 1, retain: false, schema: FeedResultSchema },
} as const;

export type TopicKind = keyof typeof TOPIC_SPECS;

export type ParsedTopic =
  | { kind: 'usage' | 'decisions' | 'commands' | 'acks'; tenantId: string; towerId: string }
  | { kind: 'discovery' | 'status' | 'sessions'; towerId: string }
  | { kind: 'carrierTowers' | 'carrierDevices' | 'carrierResults'; carrierId: string }
  | { kind: 'policy'; tenantId: string; towerId: string }
  | { kind: 'policyPart'; tenantId: string; towerId: string; part: number }
  | { kind: 'directory'; token: string }
  | { kind: 'directoryPart'; token: string; part: number }
  | { kind: 'legacyPolicy'; tenantId: string };

/** Parts of one bundle document are numbered 0…65535 (topic level: decimal, no leading zero). */
const PART_RE = /^(0|[1-9][0-9]{0,4})$/;
const MAX_PART = 65_535;

function checkPart(part: number): number {
  if (!Number.isInteger(part) || part < 0 || part > MAX_PART) throw new Error(`invalid bundle part number: ${part}`);
  return part;
}

function checkId(what: string, id: string): string {
  if (!TOPIC_ID_RE.test(id)) throw new Error(`invalid ${what} for a topic level: ${JSON.stringify(id)}`);
  return id;
}

export const topics = {
  usage: (tenantId: string, towerId: string) => `tenants/${checkId('tenantId', tenantId)}/towers/${checkId('towerId', towerId)}/usage`,
  discovery: (towerId: string) => `towers/${checkId('towerId', towerId)}/discovery`,
  status: (towerId: string) => `towers/${checkId('towerId', towerId)}/status`,
  decisions: (tenantId: string, towerId: string) => `tenants/${checkId('tenantId', tenantId)}/towers/${checkId('towerId', towerId)}/decisions`,
  commands: (tenantId: string, towerId: string) => `tenants/${checkId('tenantId', tenantId)}/towers/${checkId('towerId', towerId)}/commands`,
  acks: (tenantId: string, towerId: string) => `tenants/${checkId('tenantId', tenantId)}/towers/${checkId('towerId', towerId)}/acks`,
  policy: (tenantId: string, towerId: string) => `tenants/${checkId('tenantId', tenantId)}/towers/${checkId('towerId', towerId)}/policy`,
  policyPart: (tenantId: string, towerId: string, part: number) =>
    `tenants/${checkId('tenantId', tenantId)}/towers/${checkId('towerId', towerId)}/policy/${checkPart(part)}`,
  directory: (token: string) => `directory/${checkId('directory token', token)}`,
  directoryPart: (token: string, part: number) => `directory/${checkId('directory token', token)}/${checkPart(part)}`,
  legacyPolicy: (tenantId: string) => `tenants/${checkId('tenantId', tenantId)}/policy`,
  sessions: (towerId: string) => `towers/${checkId('towerId', towerId)}/sessions`,
  carrierTowers: (carrierId: string) => `carriers/${checkId('carrierId', carrierId)}/feeds/towers`,
  carrierDevices: (carrierId: string) => `carriers/${checkId('carrierId', carrierId)}/feeds/devices`,
  carrierResults: (carrierId: string) => `carriers/${checkId('carrierId', carrierId)}/feeds/results`,
} as const;

/** Subscription filters (with '+' wildcards) used by the cloud and by agents. */
export const filters = {
  allUsage: 'tenants/+/towers/+/usage',
  allAcks: 'tenants/+/towers/+/acks',
  allDiscovery: 'towers/+/discovery',
  allStatus: 'towers/+/status',
  towerDecisions: (towerId: string) => `tenants/+/towers/${checkId('towerId', towerId)}/decisions`,
  towerCommands: (towerId: string) => `tenants/+/towers/${checkId('towerId', towerId)}/commands`,
  /** A tower's policy bundles: one per tenant it serves, heads and parts. */
  towerPolicies: (towerId: string) => `tenants/+/towers/${checkId('towerId', towerId)}/policy/#`,
  /** The device directory: every tenant's slice, heads and parts. */
  directory: 'directory/#',
  /** Every retained edge document, whichever tenant or tower: bundles, legacy bundles, directory slices, parts. */
  edgeDocuments: ['tenants/+/towers/+/policy', 'tenants/+/towers/+/policy/+', 'tenants/+/policy', 'directory/+', 'directory/+/+'],
} as const;

/** An edge document's topic (a head or a part), as `filters.edgeDocuments` match them. */
export type EdgeDocumentTopic = Extract<ParsedTopic, { kind: 'policy' | 'policyPart' | 'directory' | 'directoryPart' | 'legacyPolicy' }>;

export function edgeDocumentOf(topic: string): EdgeDocumentTopic | null {
  const p = parseTopic(topic);
  switch (p?.kind) {
    case 'policy':
    case 'policyPart':
    case 'directory':
    case 'directoryPart':
    case 'legacyPolicy':
      return p;
    default:
      return null;
  }
}

/** Recognises a concrete topic (no wildcards). Returns null for anything that is not ours. */
export function parseTopic(topic: string): ParsedTopic | null {
  const p = topic.split('/');
  const ok = (s: string | undefined): s is string => s !== undefined && TOPIC_ID_RE.test(s);
  const part = (s: string | undefined): number | null => (s !== undefined && PART_RE.test(s) && Number(s) <= MAX_PART ? Number(s) : null);
  if (p[0] === 'tenants') {
    if (p.length === 3 && p[2] === 'policy' && ok(p[1])) return { kind: 'legacyPolicy', tenantId: p[1] };
    if (p.length === 5 && p[2] === 'towers' && ok(p[1]) && ok(p[3])) {
      const k = p[4];
      if (k === 'usage' || k === 'decisions' || k === 'commands' || k === 'acks' || k === 'policy') {
        return { kind: k, tenantId: p[1], towerId: p[3] };
      }
    }
    if (p.length === 6 && p[2] === 'towers' && p[4] === 'policy' && ok(p[1]) && ok(p[3])) {
      const n = part(p[5]);
      if (n !== null) return { kind: 'policyPart', tenantId: p[1], towerId: p[3], part: n };
    }
    return null;
  }
  if (p[0] === 'directory' && ok(p[1])) {
    if (p.length === 2) return { kind: 'directory', token: p[1] };
    const n = part(p[2]);
    if (p.length === 3 && n !== null) return { kind: 'directoryPart', token: p[1], part: n };
    return null;
  }
  if (p[0] === 'towers' && p.length === 3 && ok(p[1])) {
    if (p[2] === 'discovery' || p[2] === 'status' || p[2] === 'sessions') return { kind: p[2], towerId: p[1] };
  }
  if (p[0] === 'carriers' && p.length === 4 && ok(p[1]) && p[2] === 'feeds') {
    if (p[3] === 'towers') return { kind: 'carrierTowers', carrierId: p[1] };
    if (p[3] === 'devices') return { kind: 'carrierDevices', carrierId: p[1] };
    if (p[3] === 'results') return { kind: 'carrierResults', carrierId: p[1] };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// ACL
// ---------------------------------------------------------------------------------------------

/** Who is on the other end of an MQTT connection, after authentication. */
export type MqttPrincipal =
  | { kind: 'tower'; towerId: string; credentialId: string }
  | { kind: 'console'; tenantId: string; userId: string }
  | { kind: 'carrier'; carrierId: string; credentialId: string }
  | { kind: 'service'; name: string }
  | { kind: 'anonymous' };

/**
 * The filters a principal may publish to. A concrete topic is authorised when it lies within
 * one of them (see `filterWithin`). Services are trusted; '#' is checked separately for $SYS.
 */
export function publishAcl(p: MqttPrincipal): string[] {
  switch (p.kind) {
    case 'tower':
      return [
        `tenants/+/towers/${p.towerId}/usage`,
        `tenants/+/towers/${p.towerId}/acks`,
        `towers/${p.towerId}/discovery`,
        `towers/${p.towerId}/status`,
        `towers/${p.towerId}/sessions`,
      ];
    case 'carrier':
      // Its own two feeds; never a tower's or a tenant's topic, never another carrier's.
      return [topics.carrierTowers(p.carrierId), topics.carrierDevices(p.carrierId)];
    case 'service':
      return ['tenants/#', 'towers/#', filters.directory];
    case 'console':
    case 'anonymous':
      return [];
  }
}

/**
 * The filters a principal may subscribe to. A console user or service may subscribe to any
 * filter that lies within one of them; a tower only to these exact filters (see maySubscribe).
 */
export function subscribeAcl(p: MqttPrincipal): string[] {
  switch (p.kind) {
    case 'tower':
      // What its agent subscribes to: every tenant it serves in one filter each. The cloud
      // publishes a tower's decisions, commands and policy bundles only under the tenants it
      // serves (whose events it sent); the directory is every tower's, and reveals no inventory.
      return [filters.towerDecisions(p.towerId), filters.towerCommands(p.towerId), filters.towerPolicies(p.towerId), filters.directory];
    case 'console':
      // Read-only view of its own tenant; never another tenant's prefix.
      return [`tenants/${p.tenantId}/#`];
    case 'carrier':
      // The results of its own feeds, and nothing a tenant or a tower sees.
      return [topics.carrierResults(p.carrierId)];
    case 'service':
      return ['tenants/#', 'towers/#', filters.directory];
    case 'anonymous':
      return [];
  }
}

/**
 * True when every topic matched by `filter` is also matched by `allowed`, i.e. the requested
 * filter does not widen what the ACL grants. Levels are compared one by one:
 * - allowed '#' covers the rest (including a requested '#');
 * - allowed '+' covers one level: a literal or '+', but not '#';
 * - an allowed literal covers only the same literal (a requested '+' or '#' would widen it).
 * Topics starting with '$' are never within a filter that does not itself start with '$'
 * [MQTT-4.7.2-1], so `$SYS/#` is never granted by these ACLs.
 */
export function filterWithin(filter: string, allowed: string): boolean {
  if (filter.length === 0) return false;
  const f = filter.split('/');
  const a = allowed.split('/');
  if (f[0]?.startsWith('$') !== a[0]?.startsWith('$')) return false;
  for (let i = 0; i < a.length; i++) {
    const al = a[i]!;
    const fl = f[i];
    if (al === '#') return true;
    if (fl === undefined) return false;
    if (al === '+') {
      if (fl === '#') return false;
      continue;
    }
    if (fl !== al) return false;
  }
  return f.length === a.length;
}

export function mayPublish(p: MqttPrincipal, topic: string): boolean {
  // [MQTT-3.3.2-2] a PUBLISH topic name must not contain wildcards.
  if (topic.includes('+') || topic.includes('#')) return false;
  if ((p.kind === 'tower' || p.kind === 'carrier') && parseTopic(topic) === null) return false;
  return publishAcl(p).some((a) => filterWithin(topic, a));
}

/**
 * A tower is granted its four filters verbatim and nothing narrower: every distinct filter a
 * session holds costs the broker memory (and, on a persistent session, storage), and the four
 * wildcards already cover every tenant it serves, so narrower ones (its decisions under one
 * tenant id, then the next, …) would only let one tower make the broker hold thousands.
 */
export function maySubscribe(p: MqttPrincipal, filter: string): boolean {
  if (p.kind === 'tower' || p.kind === 'carrier') return subscribeAcl(p).includes(filter);
  return subscribeAcl(p).some((a) => filterWithin(filter, a));
}

/**
 * Whether a message on `topic` may be delivered to `p`: the topic lies within its subscribe ACL,
 * and uplinks (what towers publish) reach internal services only. Tower uplinks are claims the
 * cloud has not checked yet (a usage event for a device of another tenant is rejected by the
 * workers), so no console user or other tower ever receives one.
 */
export function mayReceive(p: MqttPrincipal, topic: string): boolean {
  const parsed = parseTopic(topic);
  if (parsed !== null && TOPIC_SPECS[parsed.kind].direction === 'uplink' && p.kind !== 'service') return false;
  return subscribeAcl(p).some((a) => filterWithin(topic, a));
}

/**
 * The highest QoS the broker grants `p` on `filter` [MQTT-3.9.3]. QoS 0 means nothing is queued
 * for the session while it is offline:
 * - a tower's policy bundles and the device directory: only the newest version matters, and it
 *   is retained, so the tower gets it when it SUBSCRIBEs after (re)connecting [MQTT-3.8.4-3]
 *   rather than every republish made while it was away;
 * - console users: live views; what happened while they were away is in the API.
 */
export function subscriptionMaxQos(p: MqttPrincipal, filter: string): 0 | 1 {
  if (p.kind === 'console') return 0;
  if (p.kind === 'tower' && (filter === filters.towerPolicies(p.towerId) || filter === filters.directory)) return 0;
  return 1;
}

// ---------------------------------------------------------------------------------------------
// Identities on the wire (used by the broker's authenticate hook and by every MQTT client)
// ---------------------------------------------------------------------------------------------

const CONSOLE_SESSION_RE = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * Client ids and usernames the broker recognises. A tower must connect with client id
 * `tower-<towerId>` so no other principal can take over its persistent session [MQTT-3.1.4-2];
 * a console user with `console-<userId>` or `console-<userId>.<session>` (several dashboards),
 * or an empty id on a clean session (the broker assigns one). The `tower-`, `console-` and
 * `service-` prefixes are reserved for those principals.
 */
export const mqttIdentity = {
  towerClientId: (towerId: string) => `tower-${checkId('towerId', towerId)}`,
  towerClientIdPrefix: 'tower-',
  /** A carrier logs in as `carrier:<carrierId>` with client id `carrier-<carrierId>`. */
  carrierClientId: (carrierId: string) => `carrier-${checkId('carrierId', carrierId)}`,
  carrierClientIdPrefix: 'carrier-',
  carrierUsername: (carrierId: string) => `carrier:${checkId('carrierId', carrierId)}`,
  carrierUsernamePrefix: 'carrier:',
  consoleClientIdPrefix: 'console-',
  consoleClientId: (userId: string, session?: string) => {
    const base = `console-${checkId('console user id', userId)}`;
    if (session === undefined) return base;
    if (!CONSOLE_SESSION_RE.test(session)) throw new Error(`invalid console session name: ${JSON.stringify(session)}`);
    return `${base}.${session}`;
  },
  /** True when `clientId` is one of `userId`'s console client ids ('.' cannot occur in an id). */
  isConsoleClientIdOf: (clientId: string, userId: string) => {
    const base = `console-${userId}`;
    if (!TOPIC_ID_RE.test(userId) || !clientId.startsWith(base)) return false;
    const rest = clientId.slice(base.length);
    return rest === '' || (rest.startsWith('.') && CONSOLE_SESSION_RE.test(rest.slice(1)));
  },
  serviceClientIdPrefix: 'service-',
  serviceClientId: (name: string) => `service-${checkId('service name', name)}`,
  serviceUsername: (name: string) => `service:${checkId('service name', name)}`,
  serviceUsernamePrefix: 'service:',
  /** Console users (dashboards over MQTT/WebSocket) log in as `console` with an access JWT as password. */
  consoleUsername: 'console',
} as const;

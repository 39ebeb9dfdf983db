/**
 * Test harness for the API: a real SQLite store in a temp dir, an in-memory key ring, a clock the
 * test can move, and helpers that sign in through the real endpoints. Not a test file itself.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterEach, beforeEach } from 'vitest';
import { hashPassword } from '../shared/auth/passwords.js';
import { KeyRing, TokenService } from '../shared/auth/tokens.js';
import type { Redis } from 'ioredis';
import WebSocket from 'ws';
import { InProcessBus, type Bus } from '../shared/bus.js';
import type { TrustProxy } from '../shared/config.js';
import { CommandService } from '../shared/commands/command-service.js';
import { createIdFactory } from '../shared/ids.js';
import { InProcessJobQueues } from '../shared/workflow/job-queue.js';
import { InProcessRateBudgets, type RateBudgets } from '../shared/workflow/rate-budgets.js';
import { createLogger, silentLogger } from '../shared/logger.js';
import { LogCapture } from '../test/support/log-lines.js';
import { uniquePrefix } from '../test/support/redis.js';
import { Counters } from '../shared/metrics.js';
import { createRedis } from '../shared/redis/connection.js';
import { RedisBus } from '../shared/redis/redis-bus.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { buildApp, type Readiness } from './app.js';

export const PASSWORD = 'correct horse battery staple';
export const OPERATOR_EMAIL = 'operator@edgeplane.test';
export const COMMAND_TTL_S = 600;

export interface Harness {
  app: FastifyInstance;
  store: SqliteStore;
  bus: Bus;
  budgets: RateBudgets;
  counters: Counters;
  clock: { now: number; advance(ms: number): void };
  close(): Promise<void>;
}

export interface HarnessOptions {
  readiness?: () => Promise<Readiness>;
  /** Lets a test add routes (e.g. one that throws) before the app is sealed. */
  beforeReady?: (app: FastifyInstance) => void;
  /** Requests per minute per principal (the API's default when absent). */
  rateLimitPerMin?: number;
  /** config trust_proxy (default false). */
  trustProxy?: TrustProxy;
  /** config webhook_allow_private (default false). */
  webhookAllowPrivate?: boolean;
  /** Sign-in throttle budgets; default a fresh in-process adapter (exposed as `budgets`). */
  budgets?: RateBudgets;
  /** Shares request rate limits through Redis (as an API process of a deployment would). */
  redis?: { connection: Redis; prefix: string };
  /** Another process' bus (e.g. a RedisBus); default a fresh in-process one. */
  bus?: Bus;
  /** Another process' store (several API processes on one database); default a fresh SQLite file. */
  store?: SqliteStore;
  /** The deployment's signing keys (shared by its API processes); default a fresh in-memory ring. */
  keyRing?: KeyRing;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeplane-api-'));
  const clock = {
    now: Date.now(),
    advance(ms: number) {
      this.now += ms;
    },
  };
  const now = () => clock.now;
  const ownStore = opts.store === undefined;
  const store = opts.store ?? new SqliteStore({ file: join(dir, 'edgeplane.db'), now });
  if (ownStore) await store.init();
  const keyRing = opts.keyRing ?? (await KeyRing.open(null, now()));
  const bus = opts.bus ?? new InProcessBus();
  const budgets = opts.budgets ?? new InProcessRateBudgets();
  const counters = new Counters();
  // Commands are recorded and scheduled on an in-process queue that nothing consumes here: the
  // API's part ends at issuing (the pipeline tests send them).
  const queues = new InProcessJobQueues();
  const commands = new CommandService(
    { store, bus, queues, counters, now, newId: createIdFactory() },
    { ttlS: COMMAND_TTL_S, retryMinMs: 1000, retryMaxMs: 60_000 },
  );
  const app = await buildApp({
    commands,
    store,
    tokens: new TokenService(keyRing, 900, now),
    keyRing,
    bus,
    counters,
    logger: silentLogger(),
    config: {
      access_token_ttl_s: 900,
      refresh_token_ttl_s: 3600,
      ...(opts.rateLimitPerMin !== undefined && { rate_limit_per_min: opts.rateLimitPerMin }),
      ...(opts.trustProxy !== undefined && { trust_proxy: opts.trustProxy }),
      ...(opts.webhookAllowPrivate !== undefined && { webhook_allow_private: opts.webhookAllowPrivate }),
      ...(opts.redis && { redis_prefix: opts.redis.prefix }),
    },
    budgets,
    ...(opts.redis && { redis: opts.redis.connection }),
    now,
    ...(opts.readiness && { readiness: opts.readiness }),
  });
  try {
    opts.beforeReady?.(app);
    await app.ready();
  } catch (err) {
    await app.close();
    if (ownStore) await store.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  if (!(await store.consoleUsers.findByEmail(OPERATOR_EMAIL))) {
    await store.consoleUsers.create({
      tenant_id: null,
      email: OPERATOR_EMAIL,
      console_role: 'operator',
      password_hash: await hashPassword(PASSWORD),
    });
  }
  return {
    app,
    store,
    bus,
    budgets,
    counters,
    clock,
    async close() {
      await app.close();
      await queues.close();
      if (ownStore) await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Session {
  access: string;
  refresh: string;
  headers: { authorization: string };
}

export function json<T = Record<string, unknown>>(res: LightMyRequestResponse): T {
  return JSON.parse(res.body) as T;
}

export async function login(app: FastifyInstance, email: string, password = PASSWORD): Promise<Session> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } });
  if (res.statusCode !== 200) throw new Error(`login ${email} failed: ${res.statusCode} ${res.body}`);
  const body = json<{ access_token: string; refresh_token: string }>(res);
  return { access: body.access_token, refresh: body.refresh_token, headers: { authorization: `Bearer ${body.access_token}` } };
}

/** Creates a tenant with an owner through the operator API and signs the owner in. */
export async function createTenant(
  app: FastifyInstance,
  operator: Session,
  name: string,
): Promise<{ tenantId: string; owner: Session; ownerEmail: string }> {
  const ownerEmail = `owner@${name.toLowerCase()}.test`;
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/tenants',
    headers: operator.headers,
    payload: { name, owner: { email: ownerEmail, password: PASSWORD } },
  });
  if (res.statusCode !== 201) throw new Error(`create tenant failed: ${res.statusCode} ${res.body}`);
  const tenantId = json<{ tenant: { id: string } }>(res).tenant.id;
  return { tenantId, owner: await login(app, ownerEmail), ownerEmail };
}

/** POST helper returning the parsed body, failing loudly on an unexpected status. */
export async function post<T = Record<string, unknown>>(
  app: FastifyInstance,
  session: Session,
  url: string,
  payload: object,
  expected = 201,
): Promise<T> {
  const res = await app.inject({ method: 'POST', url, headers: session.headers, payload });
  if (res.statusCode !== expected) throw new Error(`POST ${url}: ${res.statusCode} ${res.body}`);
  return json<T>(res);
}

/**
 * One API process of several sharing a SQLite file, listening on 127.0.0.1: its own store handle,
 * and its own bus — over Redis when `redis` is given, else in process (it then hears nothing the
 * others announce: a lost announcement). Closed, in order, by the functions pushed on `cleanup`.
 */
export async function startApiProcess(opts: {
  file: string;
  keyRing: KeyRing;
  cleanup: Array<() => Promise<unknown>>;
  redis?: { url: string; prefix: string };
}): Promise<{ h: Harness; store: SqliteStore }> {
  const store = new SqliteStore({ file: opts.file });
  await store.init();
  let bus: RedisBus | undefined;
  let clients: Redis[] = [];
  if (opts.redis) {
    const publisher = createRedis(opts.redis.url, { name: 'api-process-pub' });
    const subscriber = createRedis(opts.redis.url, { name: 'api-process-sub' });
    clients = [subscriber, publisher];
    bus = new RedisBus({ publisher, subscriber, prefix: opts.redis.prefix });
    await bus.start();
  }
  const h = await startHarness({ rateLimitPerMin: 1_000_000, store, keyRing: opts.keyRing, ...(bus ? { bus } : {}) });
  opts.cleanup.push(async () => {
    await h.close();
    await bus?.stop();
    for (const client of clients) await client.quit();
    await store.close();
  });
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  return { h, store };
}

/**
 * The request log, captured (the harness logs nowhere): pass `beforeReady` to startHarness and read
 * `lines` (clear it with `lines.length = 0`). Its hook runs after the guard, so what a refused
 * request would log is read through a public route.
 */
export function requestLogCapture(): { lines: string[]; beforeReady: (app: FastifyInstance) => void } {
  const sink = new LogCapture();
  const logger = createLogger('info', sink);
  return {
    lines: sink.lines,
    beforeReady: (app) => {
      app.addHook('onRequest', async (request) => {
        request.log = logger;
      });
    },
  };
}

/** An open live feed: its socket and how it closed (code and reason) once it does. */
export interface OpenedFeed {
  ws: WebSocket;
  closed: Promise<{ code: number; reason: string }>;
}

const wsUrl = (h: Harness, path: string) => `ws://127.0.0.1:${(h.app.server.address() as AddressInfo).port}${path}`;

/** Opens `/ws/alerts` on a listening harness with a bearer credential and waits for its 'ready' message. */
export async function openAlertsFeed(h: Harness, credential: string): Promise<OpenedFeed> {
  const ws = new WebSocket(wsUrl(h, '/ws/alerts'), ['bearer', credential]);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const first = await new Promise<{ type: string }>((resolve, reject) => {
    ws.once('message', (raw: Buffer) => resolve(JSON.parse(raw.toString('utf8')) as { type: string }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
  });
  if (first.type !== 'ready') throw new Error(`feed opened with ${first.type}, not ready`);
  return { ws, closed };
}

/** The HTTP status an upgrade of `/ws/alerts` with this credential is refused with (rejects if accepted). */
export function feedUpgradeStatus(h: Harness, credential: string): Promise<number> {
  const ws = new WebSocket(wsUrl(h, '/ws/alerts'), ['bearer', credential]);
  ws.on('error', () => {});
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error('upgrade was accepted')));
    ws.once('unexpected-response', (req, res) => {
      req.destroy();
      resolve(res.statusCode ?? 0);
    });
  });
}

/**
 * Registers, for the enclosing describe, a harness on a SQLite file of its own (in a fresh
 * directory), listening on 127.0.0.1, made before each test and closed after it; `made` hands it
 * to the suite.
 */
export function sqliteHarnessPerTest(dirPrefix: string, made: (m: { h: Harness; store: SqliteStore }) => void): void {
  let dir = '';
  let opened: { h: Harness; store: SqliteStore } | null = null;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), dirPrefix));
    const store = new SqliteStore({ file: join(dir, 'edgeplane.db') });
    await store.init();
    const h = await startHarness({ rateLimitPerMin: 1_000_000, store });
    opened = { h, store };
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    made(opened);
  });
  afterEach(async () => {
    await opened?.h.close();
    await opened?.store.close();
    opened = null;
    await rm(dir, { recursive: true, force: true });
  });
}

/**
 * Registers, for the enclosing describe, two API processes sharing one SQLite file (startApiProcess)
 * made before each test: on one Redis bus when `redisUrl` is given, else each on its own in-process
 * bus (neither hears the other: a lost announcement). After each test the sockets pushed on the
 * returned array are terminated and the processes closed in reverse order.
 */
export function apiPairPerTest(opts: { dirPrefix: string; redisUrl?: string }, made: (pair: { a: Harness; b: Harness }) => void): WebSocket[] {
  let dir = '';
  const cleanup: Array<() => Promise<unknown>> = [];
  const sockets: WebSocket[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), opts.dirPrefix));
    const file = join(dir, 'edgeplane.db');
    const keyRing = await KeyRing.open(null);
    const redis = opts.redisUrl !== undefined ? { url: opts.redisUrl, prefix: uniquePrefix() } : undefined;
    const a = (await startApiProcess({ file, keyRing, cleanup, ...(redis && { redis }) })).h;
    const b = (await startApiProcess({ file, keyRing, cleanup, ...(redis && { redis }) })).h;
    made({ a, b });
  });
  afterEach(async () => {
    for (const ws of sockets.splice(0)) ws.terminate();
    for (const close of cleanup.splice(0).reverse()) await close();
    await rm(dir, { recursive: true, force: true });
  });
  return sockets;
}

/** Holds the second page read of `store`'s usage (an export's next page) until released. */
export function holdSecondUsagePage(store: SqliteStore): { held: Promise<void>; release: () => void } {
  const repo = store.usage;
  const list = repo.list.bind(repo);
  let calls = 0;
  let reached!: () => void;
  let release!: () => void;
  const held = new Promise<void>((resolve) => (reached = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  repo.list = async (...args) => {
    if (++calls === 2) {
      reached();
      await released;
    }
    return list(...args);
  };
  return { held, release };
}

/** A streamed response's whole body as far as it came, and whether the stream was cut. */
export async function readBodyToEnd(res: Response): Promise<{ text: string; cut: boolean }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text, cut: false };
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    return { text, cut: true };
  }
}

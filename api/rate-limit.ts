/**
 * The request rate limit: `--rate-limit-per-min` requests per minute per principal (console user,
 * API key, or client address when unauthenticated), counted by @fastify/rate-limit in a fixed
 * one-minute window. With a Redis connection the counters live in Redis (the plugin's RedisStore:
 * one Lua call per request), so every API process of a deployment enforces one limit; without,
 * in this process, in the LRU-bounded store below, which is the plugin's LocalStore on the API's
 * injected clock (so tests move time instead of waiting, like everywhere else).
 *
 * The plugin is registered without its own hook: the guard (auth/guard.ts) charges the caller once
 * it knows who the caller is, and failed authentications are charged to the address. Answers keep
 * the API's error shape: 429 RATE_LIMITED with Retry-After, and x-ratelimit-limit / -remaining /
 * -reset on every charged response. If Redis fails, requests are let through (availability over
 * limits) rather than refused.
 */
import fastifyRateLimit, { normalizeIP, type FastifyRateLimitStore } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { createError } from '../shared/errors.js';

export const REQUESTS_WINDOW_MS = 60_000;
export const DEFAULT_REQUESTS_PER_MIN = 100;
/** Principals remembered at once without Redis; the least recently seen are forgotten first. */
export const LOCAL_MAX_KEYS = 100_000;

export interface RequestRateLimitOptions {
  perMinute: number;
  /** The API's clock (epoch ms) for the in-process counters. */
  now: () => number;
  /** Shared counters (distributed mode); null keeps them in this process. */
  redis: Redis | null;
  /** Deployment key prefix in Redis (config redis_prefix). */
  prefix: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who the current request is charged to (set by the guard right before charging). */
    rateLimitSubject: string;
  }
}

/**
 * Paths outside the limits: probes must answer while a client floods, and the docs and the web
 * console's files are static (an office behind one address loads the console many times a minute).
 */
export function isRateLimitExempt(url: string | undefined): boolean {
  if (url === undefined) return false;
  return (
    url === '/healthz' ||
    url === '/readyz' ||
    url === '/docs' ||
    url.startsWith('/docs/') ||
    url === '/openapi.json' ||
    url === '/' ||
    url.startsWith('/console/')
  );
}

/** The unauthenticated subject: the client address, IPv6 per /64 (what one host is given). */
export function addressSubject(request: FastifyRequest): string {
  try {
    return `ip:${normalizeIP(request.ip)}`;
  } catch {
    return `ip:${request.ip}`;
  }
}

interface Window {
  count: number;
  start: number;
}

type Callback = (err: Error | null, res?: { current: number; ttl: number }) => void;

/**
 * Fixed windows in this process: a key's count restarts when its window has passed. Map order is
 * insertion order, so re-inserting on use keeps the least recently used first for eviction.
 */
function localStore(now: () => number, maxKeys: number): new () => FastifyRateLimitStore {
  const windows = new Map<string, Window>();
  const current = (key: string, windowMs: number, at: number): Window | undefined => {
    const w = windows.get(key);
    // A clock stepping back keeps the window: it must not mint requests.
    return w && at - w.start < windowMs ? w : undefined;
  };
  class LocalClockStore implements FastifyRateLimitStore {
    incr(key: string, callback: Callback, windowMs: number): void {
      const at = now();
      const w = current(key, windowMs, at) ?? { count: 0, start: at };
      w.count++;
      windows.delete(key);
      windows.set(key, w);
      if (windows.size > maxKeys) windows.delete(windows.keys().next().value as string);
      callback(null, { current: w.count, ttl: Math.min(windowMs, w.start + windowMs - at) });
    }
    read(key: string, callback: Callback, windowMs: number): void {
      const at = now();
      const w = current(key, windowMs, at);
      callback(null, w ? { current: w.count, ttl: Math.min(windowMs, w.start + windowMs - at) } : { current: 0, ttl: 0 });
    }
    child(): FastifyRateLimitStore {
      return this;
    }
  }
  return LocalClockStore;
}

export type ChargeRequest = (request: FastifyRequest, reply: FastifyReply, subject: string) => Promise<void>;

/** Registers the plugin and returns the guard's charge step. */
export async function registerRequestRateLimits(app: FastifyInstance, opts: RequestRateLimitOptions): Promise<ChargeRequest> {
  app.decorateRequest('rateLimitSubject', '');
  await app.register(fastifyRateLimit, {
    global: false,
    max: opts.perMinute,
    timeWindow: REQUESTS_WINDOW_MS,
    keyGenerator: (request) => request.rateLimitSubject,
    skipOnError: true,
    ...(opts.redis ? { redis: opts.redis, nameSpace: `${opts.prefix}ratelimit:` } : { store: localStore(opts.now, LOCAL_MAX_KEYS) }),
  });
  const limit = app.createRateLimit();
  return async (request, reply, subject) => {
    request.rateLimitSubject = subject;
    const r = await limit(request);
    if (r.isAllowed) return;
    reply.header('x-ratelimit-limit', r.max);
    reply.header('x-ratelimit-remaining', r.remaining);
    reply.header('x-ratelimit-reset', r.ttlInSeconds);
    if (!r.isExceeded) return;
    reply.header('retry-after', Math.max(1, r.ttlInSeconds));
    throw createError('RATE_LIMITED', 'too many requests; retry after the time in Retry-After');
  };
}

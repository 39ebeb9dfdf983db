/**
 * Example ingest plugin (shared/ingest/README.md walks through it): a line protocol over TCP for
 * tower equipment that cannot speak MQTT. It shows every part a plugin owns in ~150 lines.
 *
 *   → AUTH <tower_id> <credential_id>.<secret>      ← OK | ERR <reason> (then close)
 *   → USAGE <tenant_id> <device_id> <app> <action> [bytes]
 *   → SEEN <device_id>                               (a device no tenant claims: discovery)
 *   ← ACK <n>  once line n (1-based, after AUTH) is stored, or durably queued
 *   ← ERR <n> <reason>  for a line the pipeline will never accept (the connection stays open)
 *
 * Credentials model: the tower's own MQTT credentials (tower-credentials API), checked the same
 * way the broker checks them. Decisions are not sent back on this connection: they go out on the
 * tower's MQTT decisions topic like any other, so equipment that needs them subscribes there.
 * Lines are processed one at a time and the socket is paused meanwhile: a client sending faster
 * than the pipeline stores waits in TCP, never in our memory.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { parseTowerPassword, safeEqual, sha256 } from '../../shared/auth/secrets.js';
import { KEY_RE, TOPIC_ID_RE } from '../../shared/ids.js';
import type { IngestPlugin, IngestPluginContext } from '../../shared/ingest/plugin.js';
import { encodePayload, type DiscoveryBatch, type UsageBatch } from '../../shared/mqtt/payloads.js';
import { topics } from '../../shared/mqtt/topics.js';
import type { UplinkMessage } from '../../shared/mqtt/transport.js';
import type { Store } from '../../shared/store/port.js';

const IDLE_TIMEOUT_MS = 60_000;
/** Connections at once; more are refused by the listener (memory stays bounded). */
const MAX_CONNECTIONS = 1000;

export interface LinePluginOptions {
  host: string;
  port: number;
  towerCredentials: Pick<Store['towerCredentials'], 'get'>;
  towers: Pick<Store['towers'], 'get'>;
  maxLineBytes?: number;
}

export class LineIngestPlugin implements IngestPlugin {
  readonly name = 'line';
  readonly #ctx: IngestPluginContext;
  readonly #o: LinePluginOptions;
  readonly #sockets = new Set<Socket>();
  #server: Server | null = null;
  #port = 0;

  constructor(ctx: IngestPluginContext, opts: LinePluginOptions) {
    this.#ctx = ctx;
    this.#o = opts;
  }

  get port(): number {
    return this.#port;
  }

  async start(): Promise<void> {
    const server = createServer((socket) => this.#serve(socket));
    server.maxConnections = MAX_CONNECTIONS;
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.port, this.#o.host, () => resolve());
    });
    const addr = server.address();
    this.#port = typeof addr === 'object' && addr ? addr.port : this.#o.port;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    // A line being stored finishes first (the socket is ended, not destroyed, after its ACK).
    for (const s of this.#sockets) s.end();
    await closed;
  }

  #serve(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => undefined);
    // A connection that never authenticates (or goes quiet) does not hold a slot for ever.
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    const max = this.#o.maxLineBytes ?? 4096;
    let buffered = '';
    let refused = false;
    let towerId: string | null = null;
    let n = 0;
    let busy = Promise.resolve();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (refused) return;
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).replace(/\r$/, '');
        buffered = buffered.slice(nl + 1);
        if (line.length > max) break;
        socket.pause();
        busy = busy.then(async () => {
          if (towerId === null) {
            towerId = await this.#authenticate(line);
            socket.write(towerId ? 'OK\n' : 'ERR authentication failed\n');
            if (!towerId) socket.end();
            return;
          }
          n++;
          socket.write(await this.#handleLine(towerId, n, line));
        }).finally(() => socket.resume());
      }
      // A line (finished or not) longer than the bound ends the connection.
      if (nl >= 0 || buffered.length > max) {
        refused = true;
        buffered = '';
        this.#ctx.counters.message('line_too_long');
        void busy.then(() => socket.end('ERR 0 line too long\n'));
      }
    });
  }

  async #authenticate(line: string): Promise<string | null> {
    const [verb, towerId, password] = line.split(' ');
    const parsed = password ? parseTowerPassword(password) : null;
    if (verb !== 'AUTH' || !towerId || !parsed) return this.#refuse('malformed_auth');
    const cred = await this.#o.towerCredentials.get(parsed.credentialId);
    if (!cred || cred.tower_id !== towerId || !safeEqual(sha256(parsed.secret), cred.secret_hash)) return this.#refuse('bad_credentials');
    if (cred.revoked_at !== null) return this.#refuse('revoked');
    const tower = await this.#o.towers.get(towerId);
    if (!tower || tower.retired_at !== null) return this.#refuse('unknown_tower');
    return towerId;
  }

  #refuse(reason: string): null {
    this.#ctx.counters.inc('line_auth_failures_total', { reason });
    return null;
  }

  async #handleLine(towerId: string, n: number, line: string): Promise<string> {
    const msg = this.#toMessage(towerId, line);
    if (typeof msg === 'string') {
      this.#ctx.counters.message('invalid_line');
      return `ERR ${n} ${msg}\n`;
    }
    try {
      await this.#ctx.sink.accept(msg);
    } catch {
      // Not stored: no ACK, the client resends it (processing is idempotent by event id only
      // if it resends the same id, which this toy protocol cannot; say so in the docs).
      this.#ctx.counters.message('sink_failed');
      return `ERR ${n} not stored, retry\n`;
    }
    this.#ctx.counters.message('accepted');
    return `ACK ${n}\n`;
  }

  #toMessage(towerId: string, line: string): UplinkMessage | string {
    const parts = line.trim().split(/\s+/);
    const now = this.#ctx.now();
    const base = { tower_id: towerId, received_at: now };
    if (parts[0] === 'USAGE') {
      const [, tenantId, deviceId, app, action, bytes] = parts;
      if (!tenantId || !TOPIC_ID_RE.test(tenantId) || !deviceId || !TOPIC_ID_RE.test(deviceId)) return 'bad tenant or device id';
      if (!app || !KEY_RE.test(app) || !action || !KEY_RE.test(action)) return 'bad app or action';
      if (bytes !== undefined && !/^\d{1,15}$/.test(bytes)) return 'bad bytes';
      const batch: UsageBatch = {
        v: 1,
        id: this.#ctx.newId(),
        sent_at: now,
        events: [{ id: this.#ctx.newId(), ts: now, device_id: deviceId, app, action, ...(bytes !== undefined && { bytes: Number(bytes) }) }],
      };
      return { ...base, topic: topics.usage(tenantId, towerId), parsed: { kind: 'usage', tenantId, towerId }, payload: encodePayload(batch) };
    }
    if (parts[0] === 'SEEN') {
      const deviceId = parts[1];
      if (!deviceId || !TOPIC_ID_RE.test(deviceId)) return 'bad device id';
      const batch: DiscoveryBatch = { v: 1, id: this.#ctx.newId(), sent_at: now, devices: [{ device_id: deviceId, first_seen: now, last_seen: now, count: 1 }] };
      return { ...base, topic: topics.discovery(towerId), parsed: { kind: 'discovery', towerId }, payload: encodePayload(batch) };
    }
    return 'unknown verb (USAGE or SEEN)';
  }
}

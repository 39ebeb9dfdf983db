/**
 * Example ingest plugin (shared/ingest/README.md walks through it): a line protocol over TCP for
 * tower equipment that cannot speak MQTT. It shows every part a plugin owns in one file.
 *
 *   → AUTH <tower_id> <credential_id>.<secret>      ← OK | ERR <reason> (then close)
 *   → USAGE <tenant_id> <device_id> <app> <action> [bytes]
 *   → SEEN <device_id>                               (a device no tenant claims: discovery)
 *   ← ACK <n>  once line n (1-based, after AUTH) is stored, or durably queued
 *   ← ERR <n> <reason>  for a line the pipeline will never accept (the connection stays open)
 *   ← ERR <n> credential revoked | tower retired   (then close: checked before every line)
 *
 * Credentials model: the tower's own MQTT credentials (tower-credentials API), checked the same
 * way the broker checks them. Decisions are not sent back on this connection: they go out on the
 * tower's MQTT decisions topic like any other, so equipment that needs them subscribes there.
 * Lines are processed one at a time and the socket is paused meanwhile, and while the client has
 * not read our replies: a client sending faster than the pipeline stores, or than it reads, waits
 * in TCP, never in our memory.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { parseTowerPassword, safeEqual, sha256 } from '../../shared/auth/secrets.js';
import { KEY_RE, TOPIC_ID_RE } from '../../shared/ids.js';
import type { IngestPlugin, IngestPluginContext } from '../../shared/ingest/plugin.js';
import { encodePayload, type DiscoveryBatch, type UsageBatch } from '../../shared/mqtt/payloads.js';
import { topics } from '../../shared/mqtt/topics.js';
import type { UplinkMessage } from '../../shared/mqtt/transport.js';
import type { Store } from '../../shared/store/port.js';
import { towerLoginWithdrawn } from '../authenticate.js';

const IDLE_TIMEOUT_MS = 60_000;
/** From accept to a successful AUTH, or from a final ERR to the close (the broker's CONNECT timeout). */
const AUTH_TIMEOUT_MS = 10_000;
/** Connections at once; more are refused by the listener (memory stays bounded). */
const MAX_CONNECTIONS = 1000;

export interface LinePluginOptions {
  host: string;
  port: number;
  towerCredentials: Pick<Store['towerCredentials'], 'get'>;
  towers: Pick<Store['towers'], 'get'>;
  maxLineBytes?: number;
}

interface TowerSession {
  towerId: string;
  credentialId: string;
}

export class LineIngestPlugin implements IngestPlugin {
  readonly name = 'line';
  readonly #ctx: IngestPluginContext;
  readonly #o: LinePluginOptions;
  /** Open connections, each with how it winds down on stop(). */
  readonly #connections = new Map<Socket, () => void>();
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
    // Nothing more is read; the lines already read are answered (a line being stored finishes
    // first), then the socket is ended: ending it at once lost the ACK of a line already stored.
    for (const drain of this.#connections.values()) drain();
    await closed;
  }

  #serve(socket: Socket): void {
    // Authenticated or not, a connection that trickles a byte now and then resets the idle timer:
    // it must authenticate within AUTH_TIMEOUT_MS of its accept, as an MQTT CONNECT must, or a
    // slow client could hold every slot for days.
    let deadline: ReturnType<typeof setTimeout> | undefined = setTimeout(() => socket.destroy(), AUTH_TIMEOUT_MS);
    socket.on('close', () => {
      clearTimeout(deadline);
      this.#connections.delete(socket);
    });
    socket.on('error', () => undefined);
    // A connection that goes quiet does not hold a slot for ever.
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    const max = this.#o.maxLineBytes ?? 4096;
    let buffered = '';
    let refused = false;
    /** A final ERR was sent (or stop() ended it): lines still buffered are dropped, nothing more is read. */
    let ended = false;
    let session: TowerSession | null = null;
    let n = 0;
    /** A line is being answered; the socket stays paused meanwhile. */
    let pumping = false;
    let stopping = false;
    let tooLong = false;
    const end = (reply?: string) => {
      refused = true;
      ended = true;
      buffered = '';
      if (reply === undefined) socket.end();
      else socket.end(reply);
      // Read (and drop) what is left, so the client's FIN is seen and the socket closes.
      socket.resume();
      // A client that keeps its side open is cut, rather than kept by the idle timer.
      clearTimeout(deadline);
      if (!socket.destroyed) deadline = setTimeout(() => socket.destroy(), AUTH_TIMEOUT_MS);
    };
    // stop(): nothing more is read; the line being answered is answered, then the socket ends.
    this.#connections.set(socket, () => {
      stopping = true;
      refused = true;
      buffered = '';
      if (!pumping && !ended) end();
    });
    const step = async (line: string): Promise<void> => {
      if (ended) return;
      if (session === null) {
        const auth = await this.#authenticate(line);
        if (typeof auth === 'string') return end(`ERR ${auth}\n`);
        session = auth;
        clearTimeout(deadline);
        deadline = undefined;
        socket.write('OK\n');
        return;
      }
      n++;
      // Revoking the credential, or retiring or deleting the tower, ends what it opened (as the
      // broker closes the tower's MQTT sessions at once).
      const gone = await this.#withdrawn(session);
      if (gone === 'unavailable') {
        this.#ctx.counters.message('store_unavailable');
        socket.write(`ERR ${n} not stored, retry\n`);
        return;
      }
      if (gone !== null) {
        this.#ctx.counters.message('revoked');
        return end(`ERR ${n} ${gone}\n`);
      }
      socket.write(await this.#handleLine(session.towerId, n, line));
    };
    const refuseLong = () => {
      if (tooLong) return;
      tooLong = true;
      refused = true;
      this.#ctx.counters.message('line_too_long');
    };
    // Lines are taken from `buffered` one at a time, each answered before the next is parsed, and
    // the socket is paused until none is left: a client sending faster than the pipeline stores
    // waits in TCP, and what the plugin holds is at most one read beyond the line bound (queueing
    // every line of a read held ~44 MB for 64 KiB of empty lines). Replies are backpressured too:
    // a client that sends without reading its replies (each ERR is ~40 bytes for a 1-byte empty
    // line) waits for the socket to drain, instead of growing our write buffer without bound.
    const pump = async (): Promise<void> => {
      pumping = true;
      let nl: number;
      while (!ended && !socket.destroyed && !socket.writableNeedDrain && (nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).replace(/\r$/, '');
        buffered = buffered.slice(nl + 1);
        if (line.length > max) {
          refuseLong();
          break;
        }
        try {
          await step(line);
        } catch (err) {
          this.#ctx.logger.error({ err }, 'line ingest failed');
          end('ERR 0 internal error\n');
        }
      }
      pumping = false;
      if (ended) return;
      if (socket.writableNeedDrain && !socket.destroyed) {
        // Still paused; the lines left are answered once the client has read the replies.
        socket.once('drain', () => void pump());
        return;
      }
      // A line (finished or not) longer than the bound ends the connection, after the lines before it.
      if (tooLong) return end('ERR 0 line too long\n');
      if (stopping) return end();
      socket.resume();
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (refused) return;
      buffered += chunk;
      if (buffered.length - buffered.lastIndexOf('\n') - 1 > max) refuseLong();
      socket.pause();
      if (!pumping) void pump();
    });
  }

  /** The tower the line speaks for, or the reason it may not (the reply after `ERR `). */
  async #authenticate(line: string): Promise<TowerSession | string> {
    const [verb, towerId, password] = line.split(' ');
    const parsed = password ? parseTowerPassword(password) : null;
    if (verb !== 'AUTH' || !towerId || !parsed) return this.#refuse('malformed_auth');
    let credentialId: string;
    try {
      const cred = await this.#o.towerCredentials.get(parsed.credentialId);
      if (!cred || cred.tower_id !== towerId || !safeEqual(sha256(parsed.secret), cred.secret_hash)) return this.#refuse('bad_credentials');
      if (cred.revoked_at !== null) return this.#refuse('revoked');
      const tower = await this.#o.towers.get(towerId);
      if (!tower || tower.retired_at !== null) return this.#refuse('unknown_tower');
      credentialId = cred.id;
    } catch {
      // The credential may be fine; we could not check it (the broker answers CONNACK 3).
      this.#ctx.counters.inc('line_auth_failures_total', { reason: 'store_unavailable' });
      return 'authentication unavailable, retry later';
    }
    return { towerId, credentialId };
  }

  /** Why an authenticated connection may no longer speak for its tower, if it may not. */
  async #withdrawn(s: TowerSession): Promise<'credential revoked' | 'tower retired' | 'unavailable' | null> {
    try {
      return await towerLoginWithdrawn(this.#o, s.credentialId, s.towerId);
    } catch {
      return 'unavailable';
    }
  }

  #refuse(reason: string): string {
    this.#ctx.counters.inc('line_auth_failures_total', { reason });
    return 'authentication failed';
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
      // Written out, not `{ ...base, topic, … }`: V8 (Node 20) builds a spread followed by keys its
      // source lacks through a slow path, ~1 µs per added key (api/routes/devices.ts).
      return { tower_id: towerId, received_at: now, topic: topics.usage(tenantId, towerId), parsed: { kind: 'usage', tenantId, towerId }, payload: encodePayload(batch) };
    }
    if (parts[0] === 'SEEN') {
      const deviceId = parts[1];
      if (!deviceId || !TOPIC_ID_RE.test(deviceId)) return 'bad device id';
      const batch: DiscoveryBatch = { v: 1, id: this.#ctx.newId(), sent_at: now, devices: [{ device_id: deviceId, first_seen: now, last_seen: now, count: 1 }] };
      return { tower_id: towerId, received_at: now, topic: topics.discovery(towerId), parsed: { kind: 'discovery', towerId }, payload: encodePayload(batch) };
    }
    return 'unknown verb (USAGE or SEEN)';
  }
}

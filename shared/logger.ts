/**
 * Structured logs (pino). Every component gets a child logger with a `module` field; events worth
 * searching for carry a stable `event` field. JSON lines when the output is a file or a pipe, a
 * human-readable line (pino-pretty) on a terminal.
 *
 * Two properties the composition roots rely on:
 * - Writing never blocks the process. pino's default destination writes synchronously and, when a
 *   pipe is full (`edgeplane start | tee log` whose reader stopped reading), retries in a busy
 *   loop: the process froze and not even SIGTERM could stop it. Writing from the thread pool
 *   instead is no cure: a write blocked there holds process.exit() forever. So a pipe or socket
 *   is written through a non-blocking libuv stream (the event loop keeps running; lines wait in
 *   memory up to MAX_BUFFERED_BYTES, then are dropped), and a reader that went away (EPIPE)
 *   silences the logger instead of crashing the process. Regular files are written directly.
 * - No key appears twice in one line: a child binding replaces its parent's value, and a key
 *   given at the call site that is already bound replaces the binding for that line.
 */
import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { isatty } from 'node:tty';
import { pino, type DestinationStream, type Logger, type LevelWithSilent, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export type LogFormat = 'auto' | 'json' | 'pretty';

export interface CreateLoggerOptions {
  /** auto: pretty when the file descriptor is a terminal, JSON otherwise. */
  format?: LogFormat;
  /** 1 = stdout (default), 2 = stderr. */
  fd?: 1 | 2;
}

/** Log lines waiting for a slow reader; beyond it lines are dropped rather than kept in memory. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

const chindingsSym = pino.symbols.chindingsSym;

/** Serialized bindings of a logger: `,"k":v,...` (pino's internal representation). */
function chindingsOf(logger: Logger): string {
  return (logger as unknown as Record<symbol, string>)[chindingsSym] ?? '';
}

/** Re-serializes a child's bindings with the last value of each key (JSON.parse keeps the last). */
function dedupeBindings(child: Logger): void {
  const raw = chindingsOf(child);
  if (raw.length < 2) return;
  const parsed = JSON.parse(`{${raw.slice(1)}}`) as Record<string, unknown>;
  const rebuilt = `,${JSON.stringify(parsed).slice(1, -1)}`;
  if (rebuilt.length !== raw.length) (child as unknown as Record<symbol, string>)[chindingsSym] = rebuilt;
}

const boundKeyCache = new WeakMap<object, Set<string>>();

function boundKeys(logger: Logger): Set<string> {
  let keys = boundKeyCache.get(logger);
  if (!keys) {
    const raw = chindingsOf(logger);
    keys = new Set(raw.length < 2 ? [] : Object.keys(JSON.parse(`{${raw.slice(1)}}`) as object));
    boundKeyCache.set(logger, keys);
  }
  return keys;
}

function baseOptions(level: LevelWithSilent): LoggerOptions {
  return {
    level,
    base: { service: 'edgeplane' },
    onChild: (child) => dedupeBindings(child),
    hooks: {
      logMethod(args, method) {
        const first: unknown = args[0];
        if (first !== null && typeof first === 'object' && !(first instanceof Error)) {
          const bound = boundKeys(this);
          if (bound.size > 0) {
            let clash: Record<string, unknown> | null = null;
            for (const k of Object.keys(first)) if (bound.has(k)) (clash ??= {})[k] = (first as Record<string, unknown>)[k];
            if (clash) {
              const rest = { ...(first as Record<string, unknown>) };
              for (const k of Object.keys(clash)) delete rest[k];
              // A one-line child: its deduplicated bindings carry the call site's values.
              const child = this.child(clash);
              return method.apply(child, [rest, ...args.slice(1)] as Parameters<typeof method>);
            }
          }
        }
        return method.apply(this, args);
      },
    },
  };
}

/** Where a root logger writes; children find it through the prototype chain. */
const kDestination = Symbol('edgeplane.logDestination');

interface Flushable {
  flush(cb: () => void): void;
}

/** Destinations holding a turn's lines (corked), written out if the process exits first. */
const corked = new Set<StreamDestination>();
let exitHookInstalled = false;

/**
 * A pipe, socket or terminal as a non-blocking libuv stream. Writes never wait: beyond
 * MAX_BUFFERED_BYTES awaiting the reader, lines are dropped (and counted). The socket is corked
 * from the first line of a turn of the event loop to its end (setImmediate), so the turn's lines
 * go out in one writev: under API load an access-log line per request was a write(2) per
 * request, 5 % of a small request's CPU. A process that exits first uncorks from its 'exit'
 * handler (a stream write tries the descriptor synchronously). Unref'd, so pending output never
 * keeps a finished process alive; flushLogger() waits for it, bounded.
 */
class StreamDestination extends Writable implements Flushable {
  readonly #socket: Socket;
  #closed = false;
  dropped = 0;

  constructor(fd: number) {
    super({ decodeStrings: false });
    this.#socket = new Socket({ fd, readable: false, writable: true });
    this.#socket.unref();
    // EPIPE: the reader is gone; nothing we write can arrive any more.
    this.#socket.on('error', () => (this.#closed = true));
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', () => {
        for (const d of corked) d.release();
      });
    }
  }

  override _write(chunk: string | Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (!this.#closed && this.#socket.writableLength + chunk.length <= MAX_BUFFERED_BYTES) {
      if (!corked.has(this)) {
        corked.add(this);
        this.#socket.cork();
        setImmediate(() => this.release());
      }
      this.#socket.write(chunk);
    } else {
      this.dropped++;
    }
    cb();
  }

  /** Hands the lines of this turn to the descriptor, in one writev. */
  release(): void {
    if (corked.delete(this)) this.#socket.uncork();
  }

  flush(cb: () => void): void {
    this.release();
    if (this.#closed || this.#socket.writableLength === 0) return cb();
    const done = (): void => {
      this.#socket.off('drain', done).off('close', done);
      cb();
    };
    this.#socket.once('drain', done).once('close', done);
  }
}

/** A regular file (or /dev/null) never refuses a write: pino's own synchronous destination. */
function fdDestination(fd: 1 | 2): DestinationStream & Partial<Flushable> {
  let streamLike = isatty(fd);
  try {
    const st = fstatSync(fd);
    streamLike ||= st.isFIFO() || st.isSocket();
  } catch {
    streamLike = false;
  }
  return streamLike ? new StreamDestination(fd) : pino.destination({ dest: fd, sync: true, mkdir: false });
}

function withDestination(logger: Logger, destination: Partial<Flushable>): Logger {
  (logger as unknown as Record<symbol, unknown>)[kDestination] = destination;
  return logger;
}

/**
 * `createLogger(level)` logs to stdout; `createLogger(level, stream)` writes JSON lines to
 * `stream` (tests capture logs this way); `createLogger(level, { format, fd })` picks the format
 * and the descriptor.
 */
export function createLogger(level: LevelWithSilent = 'info', target?: NodeJS.WritableStream | CreateLoggerOptions): Logger {
  if (target && typeof (target as NodeJS.WritableStream).write === 'function') {
    return pino(baseOptions(level), target as NodeJS.WritableStream);
  }
  const opts = (target ?? {}) as CreateLoggerOptions;
  const fd = opts.fd ?? 1;
  const format = opts.format ?? 'auto';
  const destination = fdDestination(fd);
  const human = format === 'pretty' || (format === 'auto' && isatty(fd));
  if (!human) return withDestination(pino(baseOptions(level), destination), destination);
  const stream = pretty({
    destination,
    colorize: isatty(fd),
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service,module',
    messageFormat: '{if module}[{module}] {end}{msg}',
  });
  return withDestination(pino(baseOptions(level), stream), destination);
}

/**
 * Waits (at most `timeoutMs`) until what the logger buffered is written, before process.exit()
 * discards it. A reader that never drains cannot hold the exit: the timeout wins.
 */
export function flushLogger(logger: Logger, timeoutMs: number): Promise<void> {
  const destination = (logger as unknown as Record<symbol, Partial<Flushable> | undefined>)[kDestination];
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    // One turn first: a pretty-printer hands its lines on asynchronously.
    setImmediate(() => {
      if (typeof destination?.flush === 'function') destination.flush(done);
      else done();
    });
  });
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

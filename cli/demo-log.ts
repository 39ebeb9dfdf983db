/**
 * Where the demo's control plane logs. The demo's terminal shows a live line per second; the
 * control plane's warn lines (an `alert_opened` per violation, a `tower_offline` per outage)
 * came between them as JSON and buried them. So the log goes to a file the demo names when it
 * starts, and only error lines (and worse) are also written to stderr, where a failure is still
 * seen at once.
 *
 * The file is written synchronously, as the logger writes regular files (shared/logger.ts): a
 * regular file never makes a write wait on a reader. A file that stops taking lines (a full disk)
 * costs the file, not the demo: the sink says so once on stderr and keeps passing errors there.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { Writable } from 'node:stream';

/** pino's JSON lines open with the numeric level; 50 = error, 60 = fatal. */
const ERROR_LINE = /^\{"level":(?:[5-9]\d|\d{3,})[,}]/;

export class DemoLogSink extends Writable {
  readonly path: string;
  /** Lines the file did not take (after it failed, or was closed). */
  dropped = 0;
  #fd: number | null;
  readonly #stderr: (text: string) => void;

  /** Opens (appends to) `path` at once, so a path that cannot be written fails the start. */
  constructor(path: string, stderr: (text: string) => void = (text) => void process.stderr.write(text)) {
    super({ decodeStrings: false });
    this.path = path;
    this.#stderr = stderr;
    this.#fd = openSync(path, 'a');
  }

  /** One serialized log line (pino writes each line as one string). */
  override _write(chunk: string | Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#line(typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
    cb();
  }

  #line(line: string): void {
    if (this.#fd !== null) {
      try {
        writeSync(this.#fd, line);
      } catch (err) {
        this.#fail(err);
      }
    } else {
      this.dropped++;
    }
    if (ERROR_LINE.test(line)) this.#stderr(line);
  }

  /** Closes the file (lines after it are dropped, errors still reach stderr). */
  closeFile(): void {
    if (this.#fd === null) return;
    const fd = this.#fd;
    this.#fd = null;
    try {
      closeSync(fd);
    } catch {
      // Already unusable; nothing more would be written to it anyway.
    }
  }

  #fail(err: unknown): void {
    this.dropped++;
    this.closeFile();
    const reason = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
    this.#stderr(`edgeplane demo: the control plane log ${this.path} stopped taking lines (${reason}); from now on only errors are logged, here\n`);
  }
}

/**
 * Reads a bench child's heap from outside through the V8 inspector (the child runs with
 * `--inspect=127.0.0.1:<port>`, loopback only): a full garbage collection on demand, then
 * process.memoryUsage(). The memory part uses it so per-connection figures are not GC timing.
 */
import { createWriteStream } from 'node:fs';
import WebSocket from 'ws';

export class InspectorClient {
  readonly #port: number;
  #ws: WebSocket | null = null;
  #nextId = 1;
  readonly #waiting = new Map<number, (msg: { result?: unknown; error?: { message: string } }) => void>();
  #snapshotChunk: ((chunk: string) => void) | null = null;

  constructor(port: number) {
    this.#port = port;
  }

  async start(): Promise<void> {
    const targets = (await (await fetch(`http://127.0.0.1:${this.#port}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
    const url = targets[0]?.webSocketDebuggerUrl;
    if (!url) throw new Error(`no inspector target on port ${this.#port}`);
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString()) as { id?: number; method?: string; params?: { chunk?: string }; result?: unknown; error?: { message: string } };
      if (msg.id !== undefined) this.#waiting.get(msg.id)?.(msg);
      else if (msg.method === 'HeapProfiler.addHeapSnapshotChunk') this.#snapshotChunk?.(msg.params?.chunk ?? '');
    });
    this.#ws = ws;
  }

  #call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const ws = this.#ws;
    if (!ws) return Promise.reject(new Error('inspector not started'));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, (msg) => {
        this.#waiting.delete(id);
        if (msg.error) reject(new Error(msg.error.message));
        else resolve(msg.result);
      });
      ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async collectGarbage(): Promise<void> {
    await this.#call('HeapProfiler.collectGarbage');
  }

  /** Writes a V8 heap snapshot of the child to `file` (open it in Chrome's DevTools, Memory tab). */
  async writeHeapSnapshot(file: string): Promise<void> {
    const out = createWriteStream(file);
    this.#snapshotChunk = (chunk) => out.write(chunk);
    try {
      await this.#call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    } finally {
      this.#snapshotChunk = null;
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    }
  }

  async memoryUsage(): Promise<NodeJS.MemoryUsage> {
    const r = (await this.#call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as { result: { value: string } };
    return JSON.parse(r.result.value) as NodeJS.MemoryUsage;
  }

  async stop(): Promise<void> {
    const ws = this.#ws;
    this.#ws = null;
    if (!ws) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close();
    });
  }
}

/**
 * Captures a logger's JSON lines in memory and checks them the way a log pipeline would: every
 * line parses, and no object in it repeats a key (JSON.parse would silently keep the last one).
 */
import { Writable } from 'node:stream';

export class LogCapture extends Writable {
  readonly lines: string[] = [];

  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    for (const line of chunk.toString().split('\n')) if (line) this.lines.push(line);
    cb();
  }

  events(event: string): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((o) => o.event === event);
  }
}

/** The repeated keys of any object in a JSON text, as "path.key". */
export function duplicateKeys(json: string): string[] {
  const dups: string[] = [];
  let i = 0;
  const ws = (): void => {
    while (/\s/.test(json[i] ?? '')) i++;
  };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    while (json[i] !== '"') i += json[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(json.slice(start, i)) as string;
  };
  const value = (path: string): void => {
    ws();
    const c = json[i];
    if (c === '{') {
      i++;
      const seen = new Set<string>();
      ws();
      if (json[i] === '}') return void i++;
      for (;;) {
        ws();
        const key = str();
        if (seen.has(key)) dups.push(`${path}${key}`);
        seen.add(key);
        ws();
        i++; // ':'
        value(`${path}${key}.`);
        ws();
        if (json[i++] === '}') return;
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (json[i] === ']') return void i++;
      for (;;) {
        value(`${path}[].`);
        ws();
        if (json[i++] === ']') return;
      }
    }
    if (c === '"') return void str();
    while (i < json.length && !',}] \n\t\r'.includes(json[i]!)) i++;
  };
  value('');
  return dups;
}

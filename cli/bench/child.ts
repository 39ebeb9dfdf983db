/** Spawns a TypeScript entry point in a child Node process and waits for a JSON line from it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/edgeplane.js', import.meta.url));

export interface Child {
  proc: ChildProcess;
  stop(): Promise<number | null>;
}

/**
 * Starts `node --import tsx <script> args` (or the edgeplane bin) and resolves with the first
 * stdout line for which `match` returns a value. Rejects if the child exits first.
 */
export function spawnAndWait<T>(
  args: string[],
  match: (line: string) => T | undefined,
  opts: { useBin?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<{ child: Child; value: T }> {
  const argv = opts.useBin ? [BIN, ...args] : ['--import', 'tsx', ...args];
  const proc = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'], env: opts.env ?? process.env });
  const stop = () =>
    new Promise<number | null>((resolve) => {
      if (proc.exitCode !== null) return resolve(proc.exitCode);
      proc.once('exit', (code) => resolve(code));
      proc.kill('SIGTERM');
    });
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    let done = false;
    rl.on('line', (line) => {
      if (done) return;
      const v = match(line);
      if (v !== undefined) {
        done = true;
        resolve({ child: { proc, stop }, value: v });
      }
    });
    proc.once('exit', (code) => {
      if (!done) reject(new Error(`child ${args.join(' ')} exited with ${code} before it was ready`));
    });
  });
}

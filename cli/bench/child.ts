/** Spawns a bench entry point in a child Node process and waits for a JSON line from it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { projectPath } from '../../shared/project-root.js';

/**
 * A script next to the calling module, in the caller's own form: `name.ts` when the bench runs
 * from the sources, `name.js` when it runs compiled from dist/.
 */
export function siblingScript(callerUrl: string, name: string): string {
  const caller = fileURLToPath(callerUrl);
  return fileURLToPath(new URL(`./${name}${extname(caller)}`, callerUrl));
}

/** Node flags to run `script`: the tsx loader only for TypeScript (compiled children need none). */
export function nodeArgsFor(script: string): string[] {
  return script.endsWith('.ts') ? ['--import', 'tsx', script] : [script];
}

export interface Child {
  proc: ChildProcess;
  stop(): Promise<number | null>;
}

/**
 * Starts `node <args>` (build them with nodeArgsFor) or, with `useBin`, `node bin/edgeplane.js
 * <args>`, and resolves with the first stdout line for which `match` returns a value. Rejects if
 * the child exits first.
 */
export function spawnAndWait<T>(
  args: string[],
  match: (line: string) => T | undefined,
  opts: { useBin?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<{ child: Child; value: T }> {
  // EDGEPLANE_BENCH_CPU_PROF=<dir>: every server the bench starts writes a V8 CPU profile there
  // when it exits (node --cpu-prof; NODE_OPTIONS may not carry it).
  const profDir = process.env.EDGEPLANE_BENCH_CPU_PROF;
  const prof = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  // EDGEPLANE_BENCH_NODE_ARGS="--flag …": Node/V8 flags for every server the bench starts, for
  // experiments with those NODE_OPTIONS refuses (e.g. --single-threaded-gc).
  const extra = (process.env.EDGEPLANE_BENCH_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
  const argv = [...extra, ...prof, ...(opts.useBin ? [projectPath('bin', 'edgeplane.js'), ...args] : args)];
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

/** `npm run build` (also run by `prepare`, bin/prepare.js): compiles dist/ and the agent bundle (build-dist.ts). */
import { findProjectRoot } from '../../shared/project-root.js';
import { buildDist } from './build-dist.js';

const log = (s: string): void => void process.stdout.write(`edgeplane build: ${s}\n`);
buildDist(findProjectRoot(import.meta.url), { log }).then(
  (r) => log(`done in ${((r.stamp.finished_at - r.stamp.started_at) / 1000).toFixed(1)} s`),
  (err: unknown) => {
    process.stderr.write(`edgeplane build: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);

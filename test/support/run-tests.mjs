#!/usr/bin/env node
// `npm test`: the suite as two vitest runs, one after the other (vitest.config.ts says which files
// go where and why): EDGEPLANE_TEST_GROUP=parallel, then =serial. Both always run; the exit code
// fails if either did, and the last line sums both runs' `N passed, N failed, N skipped` lines
// (test/support/summary-reporter.ts) for CI systems that read a run's last line. Arguments pass
// through to both runs (`npm test -- api/app.test.ts`; a group with no matching file passes).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const vitest = join(dirname(require.resolve('vitest/package.json')), 'vitest.mjs');
const SUMMARY = /^(\d+) passed, (\d+) failed, (\d+) skipped$/;
const FAILED = /^FAILED /;

function run(group, first) {
  return new Promise((resolve) => {
    const env = {
      ...process.env,
      EDGEPLANE_TEST_GROUP: group,
      // The global setups' skip lines (no redis-server, radclient or Chromium) once, not per run.
      ...(first ? {} : { EDGEPLANE_SKIP_LINES_SHOWN: '1' }),
      ...(process.stdout.isTTY && !process.env.NO_COLOR ? { FORCE_COLOR: '1' } : {}),
    };
    const child = spawn(process.execPath, [vitest, 'run', '--passWithNoTests', ...process.argv.slice(2)], { env, stdio: ['inherit', 'pipe', 'inherit'] });
    let summary = null;
    const failures = [];
    let partial = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const m = SUMMARY.exec(line.trim());
        if (m) summary = m.slice(1, 4).map(Number);
        else if (FAILED.test(line)) failures.push(line);
      }
    });
    child.on('close', (code, signal) => resolve({ ok: code === 0, summary, failures, signal }));
  });
}

const totals = [0, 0, 0];
const failures = [];
let ok = true;
for (const group of ['parallel', 'serial']) {
  const r = await run(group, group === 'parallel');
  if (r.signal) process.stderr.write(`vitest (${group}) ended by ${r.signal}\n`);
  ok &&= r.ok;
  failures.push(...r.failures);
  // A run that printed no summary (it crashed before the end) counts as one failure.
  const [passed, failed, skipped] = r.summary ?? [0, 1, 0];
  totals[0] += passed;
  totals[1] += failed;
  totals[2] += skipped;
}
// The failures of both runs again, just above the last line: a log cut to its end still names them.
if (failures.length > 0) process.stdout.write(`\n${failures.join('\n')}\n`);
process.stdout.write(`\n${totals[0]} passed, ${totals[1]} failed, ${totals[2]} skipped\n`);
process.exit(ok ? 0 : 1);

/**
 * Prints one plain closing line, `N passed, N failed, N skipped`, after vitest's own summary, so
 * CI systems that read a run's last line (not vitest's formatted table) see the counts. Before it,
 * one `FAILED <file> > <test>: <first line of the error>` line per failure: a CI system that keeps
 * only the end of the output still names what failed (test/support/run-tests.mjs repeats them
 * after both runs).
 */
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const lines: string[] = [];
    for (const m of testModules) {
      let failedHere = 0;
      for (const t of m.children.allTests()) {
        const result = t.result();
        if (result.state === 'passed') passed++;
        else if (result.state === 'failed') {
          failedHere++;
          lines.push(`FAILED ${m.moduleId ? relativeId(m.moduleId) : '?'} > ${t.fullName}: ${firstLine(result.errors?.[0]?.message)}`);
        } else skipped++;
      }
      // A file that failed to load, or whose beforeAll failed (its tests then count as skipped),
      // has failed without a failed test: it must still fail the count.
      if (m.state() === 'failed' && failedHere === 0) {
        failed += 1;
        lines.push(`FAILED ${relativeId(m.moduleId)}: ${firstLine(m.errors()[0]?.message)}`);
      } else failed += failedHere;
    }
    const listed = lines.length > 0 ? `\n${lines.join('\n')}` : '';
    process.stdout.write(`${listed}\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}

function relativeId(id: string): string {
  const cwd = process.cwd() + '/';
  return id.startsWith(cwd) ? id.slice(cwd.length) : id;
}

function firstLine(message: string | undefined): string {
  if (message === undefined) return '(no error message)';
  const line = message.split('\n', 1)[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/**
 * Vitest global setup: says once per run, on one line, that the console's browser tests will be
 * skipped for want of Chromium (test/support/browser.ts skips them quietly). Under CI=true they
 * are not skipped but fail, so nothing is printed here.
 */
import { chromiumAvailable, CHROMIUM_PATH } from './browser.js';
import { saySkips } from './global-setup.js';

export function setup(): void {
  if (!chromiumAvailable() && process.env.CI !== 'true' && saySkips()) {
    console.log(`Console browser tests skipped: no Chromium at ${CHROMIUM_PATH} (install: apt-get install -y chromium)`);
  }
}

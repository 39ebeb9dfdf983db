/**
 * `edgeplane simulate` against a control plane that is not all there (the real bin in a child
 * process): refused operator credentials are one clear error line; a broker that does not answer
 * leaves the towers connecting, and SIGINT then ends the run at once with a line saying nothing
 * was played, instead of waiting out the ready timeout and blaming the broker.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from '../test/support/cli.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, startTestControlPlane, type TestControlPlane } from '../test/support/control-plane.js';
import { closedPort } from '../test/support/ports.js';

const SMOKE = fileURLToPath(new URL('./scenarios/smoke.yaml', import.meta.url));

describe('edgeplane simulate: a control plane that refuses or does not answer', () => {
  let tcp: TestControlPlane;
  beforeAll(async () => {
    tcp = await startTestControlPlane();
  });
  afterAll(async () => {
    await tcp.destroy();
  });

  it('wrong operator credentials: one error line, exit 1, nothing played', async () => {
    const r = await runCli(['simulate', '--scenario', SMOKE, '--api', tcp.cp.httpUrl, '--admin-email', ADMIN_EMAIL, '--admin-password', 'not-the-password-1234']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(['edgeplane: POST /api/v1/auth/login → 401: email or password is incorrect']);
    expect(r.stdout).toBe('');
  });

  it('SIGINT while the towers cannot reach the broker ends the run with a clear line', async () => {
    const mqtt = `mqtt://127.0.0.1:${await closedPort()}`;
    const p = startCli(['simulate', '--scenario', SMOKE, '--api', tcp.cp.httpUrl, '--mqtt', mqtt, '--admin-email', ADMIN_EMAIL], {
      EDGEPLANE_ADMIN_PASSWORD: ADMIN_PASSWORD,
    });
    // Printed once the signal handlers are in place, before the towers connect.
    await p.waitForLine((l) => l.startsWith('fleet: connecting 2 towers'));
    p.child.kill('SIGINT');
    const code = await p.exit;
    const stderr = p.stderr.join('\n');
    // Exited by itself (not killed by the signal), saying why, not blaming the broker.
    expect(code, stderr).toBe(1);
    expect(stderr).toContain('SIGINT: stopping the playback');
    expect(stderr).toContain('edgeplane: interrupted while the towers were connecting: nothing was played');
    expect(stderr).not.toContain('could not connect');
    expect(p.stdout.join('\n')).toBe('');
  });
});

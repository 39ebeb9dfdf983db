/**
 * The console's REST client refuses paths a browser would resolve to another endpoint (audit):
 * every spelling of a "." or ".." segment the URL parser recognises, which encodeURIComponent
 * leaves as it is. The attack end to end (a role named "..") is in api/audit-console-attacks.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ApiError, checkedPath } from './src/lib/api';

describe('checkedPath', () => {
  it('refuses every dot segment a URL parser resolves, however it was spelled or encoded', () => {
    for (const segment of ['..', '.', '.%2e', '%2E.', '%2e%2E', '%2e', '.\t.', '\n..']) {
      const path = `/api/v1/roles/${segment}/policies/P1`;
      // What the browser would request instead: a path with a segment or two fewer.
      expect(new URL(path, 'http://console.test').pathname.split('/').length, JSON.stringify(segment)).toBeLessThan(path.split('/').length);
      expect(() => checkedPath(path), JSON.stringify(segment)).toThrow(ApiError);
    }
    expect(() => checkedPath('/api/v1/users/..\\roles/R1')).toThrow(ApiError);
  });

  it('passes ids and names with dots inside them, and dots in the query', () => {
    for (const path of ['/api/v1/roles/...', '/api/v1/roles/a..b/policies/P1', '/api/v1/roles/.hidden', '/api/v1/users/roles?user=..', '/api/v1/audit?action=devices.create']) {
      expect(checkedPath(path)).toBe(path);
    }
  });
});

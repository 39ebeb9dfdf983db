/**
 * The messages the console's banners show for the API's errors: a 429 says when to try again
 * without promising a retry (only polls retry on their own; a refused action is not done).
 */
import { describe, expect, it } from 'vitest';
import { ApiError, describeError, errorOf } from './errors';

describe('describeError', () => {
  it('tells the user to try again after a 429, with the wait the API asked for', async () => {
    const res = new Response(JSON.stringify({ error: { code: 'RATE_LIMITED', message: 'slow down' } }), { status: 429, headers: { 'retry-after': '7' } });
    expect(describeError(await errorOf(res))).toBe('Too many requests: try again in 7 s.');
    expect(describeError(new ApiError(429, 'RATE_LIMITED', 'slow down'))).toBe('Too many requests: try again in 60 s.');
  });

  it('shows the API’s message, and says when the control plane cannot be reached', () => {
    expect(describeError(new ApiError(503, 'UNAVAILABLE', 'the store is busy'))).toBe('the store is busy');
    expect(describeError(new TypeError('Failed to fetch'))).toBe('The control plane cannot be reached.');
  });
});

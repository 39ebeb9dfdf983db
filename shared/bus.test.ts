/**
 * The bus's promise to its publishers: `publish` never throws. Routes announce after their commit
 * (an alert step, an account delete), so a throw there would answer 500 for a change that is
 * stored; a failing listener is reported to the adapter's error handler instead, and the others
 * still get the event. The Redis adapter's side of it is in shared/redis/redis-bus.test.ts.
 */
import { expect, it } from 'vitest';
import { InProcessBus } from './bus.js';

it('a throwing listener neither reaches the publisher nor stops the listeners after it', () => {
  const errors: Array<[string, string]> = [];
  const bus = new InProcessBus((err, event) => errors.push([event, (err as Error).message]));
  const heard: string[] = [];
  bus.subscribe('credential.revoked', () => {
    throw new Error('listener broke');
  });
  bus.subscribe('credential.revoked', (e) => heard.push(e.credential_id));
  expect(() => bus.publish('credential.revoked', { tower_id: 'T1', credential_id: 'c1' })).not.toThrow();
  expect(heard).toEqual(['c1']);
  expect(errors).toEqual([['credential.revoked', 'listener broke']]);
});

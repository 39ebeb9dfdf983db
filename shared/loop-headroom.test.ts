import { describe, expect, it } from 'vitest';
import { LoopHeadroom, type LoopTime } from './loop-headroom.js';

/** A loop whose busy share the test sets per window, on a clock the test moves. */
function drivenLoop() {
  const t: LoopTime = { idle: 0, active: 0 };
  let clock = 0;
  let samples = 0;
  const headroom = new LoopHeadroom({
    busyAt: 0.75,
    spareBelow: 0.6,
    windowMs: 250,
    loopTime: () => {
      samples++;
      return { ...t };
    },
    now: () => clock,
  });
  return {
    headroom,
    /** `ms` of loop time, `busy` of it running callbacks. */
    run(ms: number, busy: number) {
      t.active += ms * busy;
      t.idle += ms * (1 - busy);
      clock += ms;
    },
    samples: () => samples,
  };
}

describe('loop headroom', () => {
  it('has headroom until a window is busy, then until a window is well below that again', () => {
    const loop = drivenLoop();
    expect(loop.headroom.spare()).toBe(true);
    loop.run(250, 0.7);
    expect(loop.headroom.spare()).toBe(true);
    loop.run(250, 0.8);
    expect(loop.headroom.spare()).toBe(false);
    // Between the two thresholds: stays busy (no flapping around one threshold).
    loop.run(250, 0.65);
    expect(loop.headroom.spare()).toBe(false);
    loop.run(250, 0.5);
    expect(loop.headroom.spare()).toBe(true);
    // And between them again: stays spare.
    loop.run(250, 0.7);
    expect(loop.headroom.spare()).toBe(true);
  });

  it('samples the loop at most once per window, however often it is asked', () => {
    const loop = drivenLoop();
    const atStart = loop.samples();
    for (let i = 0; i < 400; i++) {
      loop.run(0.25, 1);
      loop.headroom.spare();
    }
    // 100 ms of fully busy loop: no window has ended, so no sample and no change yet.
    expect(loop.samples()).toBe(atStart);
    expect(loop.headroom.spare()).toBe(true);
    loop.run(150, 1);
    expect(loop.headroom.spare()).toBe(false);
    expect(loop.samples()).toBe(atStart + 1);
  });

  it('judges a long quiet spell as a whole when next asked', () => {
    const loop = drivenLoop();
    loop.run(250, 0.9);
    expect(loop.headroom.spare()).toBe(false);
    loop.run(60_000, 0.01);
    expect(loop.headroom.spare()).toBe(true);
  });

  it('refuses thresholds that cannot work', () => {
    expect(() => new LoopHeadroom({ busyAt: 0.5, spareBelow: 0.6 })).toThrow(/spareBelow <= busyAt/);
    expect(() => new LoopHeadroom({ busyAt: 1.5 })).toThrow();
    expect(() => new LoopHeadroom({ spareBelow: 0 })).toThrow();
  });

  it('reads the real event loop by default', () => {
    const headroom = new LoopHeadroom({ windowMs: 0 });
    expect(typeof headroom.spare()).toBe('boolean');
  });
});

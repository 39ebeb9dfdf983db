/**
 * Counts the Map entries visited while `call` runs synchronously: what a cost test asserts instead
 * of a duration (an in-process adapter that never awaits inside does all its walking before it
 * returns its promise). Wraps the Map iterator's `next` for that call only.
 */
export function stepsOf<R>(call: () => Promise<R>): { steps: number; result: Promise<R> } {
  const proto = Object.getPrototypeOf(new Map().entries()) as { next: (...a: unknown[]) => unknown };
  const next = proto.next;
  let steps = 0;
  proto.next = function (this: unknown, ...a: unknown[]) {
    steps++;
    return next.apply(this, a);
  };
  try {
    const result = call();
    return { steps, result };
  } finally {
    proto.next = next;
  }
}

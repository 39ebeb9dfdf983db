/**
 * `work`, or what `late()` gives (its value, or its throw) once `ms` have passed without an answer:
 * the one bound on waiting for something that may never answer (Redis in its offline queue, a
 * store or database that hangs, a broker that does not take the connection). The timer is cleared
 * as soon as either side settles; `work` itself is not cancelled.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, late: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(late());
      } catch (err) {
        reject(err);
      }
    }, ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

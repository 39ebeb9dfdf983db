/** Promises that settle when a condition becomes true, or false after a timeout. */
export class Waiters {
  readonly #waiting = new Set<() => void>();

  /** Resolves true once `done()` holds at a wake(), false when `timeoutMs` passes first. */
  until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (ok: boolean): void => {
        clearTimeout(timer);
        this.#waiting.delete(check);
        resolve(ok);
      };
      const check = (): void => {
        if (done()) finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.#waiting.add(check);
    });
  }

  /** Re-checks every waiter's condition. */
  wake(): void {
    for (const w of [...this.#waiting]) w();
  }
}

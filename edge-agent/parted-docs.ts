/**
 * Reassembles retained documents published as a head plus parts (shared/mqtt/payloads.ts): the
 * head names each part by the SHA-256 of its payload, so a document is complete once every named
 * part is held with exactly that content, whatever order the retained messages arrive in. Parts
 * are kept after completion: the next version usually re-sends only the head and the parts that
 * changed.
 */
import { partRef } from '../shared/policy/edge-bundle.js';

interface Doc<H, P> {
  head: H | null;
  parts: Map<number, { ref: string; value: P }>;
  /** The head last completed (a newer head is only applied once complete). */
  done: H | null;
}

export class PartedDocs<H extends { parts: string[] }, P> {
  readonly #docs = new Map<string, Doc<H, P>>();
  readonly #onComplete: (key: string, head: H, parts: P[]) => void;

  constructor(onComplete: (key: string, head: H, parts: P[]) => void) {
    this.#onComplete = onComplete;
  }

  head(key: string, head: H): void {
    this.#doc(key).head = head;
    this.#check(key);
  }

  part(key: string, index: number, payload: Buffer, value: P): void {
    this.#doc(key).parts.set(index, { ref: partRef(payload), value });
    this.#check(key);
  }

  /** An empty retained payload on a head or part topic: the document (or that part) is gone. */
  clear(key: string, index: number | null): void {
    const doc = this.#docs.get(key);
    if (!doc) return;
    if (index === null) this.#docs.delete(key);
    else doc.parts.delete(index);
  }

  #doc(key: string): Doc<H, P> {
    let d = this.#docs.get(key);
    if (!d) this.#docs.set(key, (d = { head: null, parts: new Map(), done: null }));
    return d;
  }

  #check(key: string): void {
    const doc = this.#docs.get(key);
    const head = doc?.head;
    if (!doc || !head || head === doc.done) return;
    const values: P[] = [];
    for (let i = 0; i < head.parts.length; i++) {
      const p = doc.parts.get(i);
      if (!p || p.ref !== head.parts[i]) return;
      values.push(p.value);
    }
    // Parts beyond the head's count belong to an older version: drop them.
    for (const i of doc.parts.keys()) if (i >= head.parts.length) doc.parts.delete(i);
    doc.done = head;
    this.#onComplete(key, head, values);
  }
}

/**
 * Reassembles retained documents published as a head plus parts (shared/mqtt/payloads.ts): the
 * head names each part by the SHA-256 of its payload, so a document is complete once every named
 * part is held with exactly that content, whatever order the messages arrive in. Parts are kept
 * after completion: the next version usually re-sends only the head and the parts that changed.
 *
 * After a reconnect, QoS 1 messages queued for the session replay while live and retained ones
 * arrive, so an older head or part can come after a newer one. Neither may undo the newer one:
 * a head older than the one held is ignored, and each part index keeps the last few contents
 * received (by ref), not only the last, so a part replayed late does not evict the content a newer
 * head names. Once a head completes, each index keeps only what it named.
 */
import { partRef } from '../shared/policy/edge-bundle.js';

/** Distinct contents kept per part index while a newer head may still name any of them. */
const CANDIDATES_PER_PART = 3;

interface Doc<H, P> {
  head: H | null;
  /** Per part index: content ref → value, oldest first. */
  parts: Map<number, Map<string, P>>;
  /** The head last completed (a newer head is only applied once complete). */
  done: H | null;
}

export class PartedDocs<H extends { parts: string[]; version: number }, P> {
  readonly #docs = new Map<string, Doc<H, P>>();
  readonly #onComplete: (key: string, head: H, parts: P[]) => void;

  constructor(onComplete: (key: string, head: H, parts: P[]) => void) {
    this.#onComplete = onComplete;
  }

  head(key: string, head: H): void {
    const doc = this.#doc(key);
    // A late replay of an older version: the held head stays (same version: a re-publication).
    if (doc.head && doc.head.version > head.version) return;
    doc.head = head;
    this.#check(key);
  }

  part(key: string, index: number, payload: Buffer, value: P): void {
    const doc = this.#doc(key);
    let candidates = doc.parts.get(index);
    if (!candidates) doc.parts.set(index, (candidates = new Map()));
    const ref = partRef(payload);
    candidates.delete(ref);
    candidates.set(ref, value);
    if (candidates.size > CANDIDATES_PER_PART) candidates.delete(candidates.keys().next().value!);
    this.#check(key);
  }

  /** Some document's newest head names a part not held yet (its parts are still arriving). */
  incomplete(): boolean {
    for (const doc of this.#docs.values()) if (doc.head !== null && doc.head !== doc.done) return true;
    return false;
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
      const value = doc.parts.get(i)?.get(head.parts[i]!);
      if (value === undefined) return;
      values.push(value);
    }
    // Complete: each index keeps what this head names; indexes beyond its count are dropped.
    for (const [i, candidates] of doc.parts) {
      const ref = head.parts[i];
      if (ref === undefined) {
        doc.parts.delete(i);
        continue;
      }
      for (const other of [...candidates.keys()]) if (other !== ref) candidates.delete(other);
    }
    doc.done = head;
    this.#onComplete(key, head, values);
  }
}

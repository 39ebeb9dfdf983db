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
 *
 * What is held is bounded, whatever the broker sends (a malicious one could send any number of
 * part numbers and document keys). A part is *named* when a head held for its document (the
 * pending one or the one last completed) names that content at that index; any other part is
 * *unnamed*: it came before its head (retained messages arrive in any order) or for a newer
 * version. Unnamed parts are kept only within `maxUnnamedPerDoc` per document and
 * `maxUnnamedParts` / `maxUnnamedBytes` in all, the oldest evicted first; every part and head
 * counts against `budget` (shared by the agent's policy and directory documents), and unnamed
 * parts are evicted to make room before anything named is refused. A part index outside the
 * schema's range (0 … 65,535), a part or head that does not fit, and every eviction are dropped
 * and reported through `onDrop` (the agent counts them as invalid messages). An evicted part
 * comes back with the next publication of its document; until then the document waits
 * (bundle-gate.ts bounds how long events wait for it).
 */
import { partRef } from '../shared/policy/edge-bundle.js';

/** Distinct contents kept per part index while a newer head may still name any of them. */
const CANDIDATES_PER_PART = 3;
/** The highest part index (shared/mqtt/topics.ts MAX_PART; a head names at most 65,536 parts). */
export const MAX_PART_INDEX = 65_535;
/**
 * What a held part or head costs beyond its payload bytes (the maps' entries, the decoded value's
 * objects): charged so that a flood of tiny parts is bounded by count as well as by bytes.
 */
export const PART_OVERHEAD_BYTES = 512;
/** A head's cost per part it names (a 16-hex-digit string in an array). */
const HEAD_BYTES_PER_REF = 48;

/**
 * The default budget: the broker's default retained budget (`mqtt_max_retained_bytes`, 256 MiB);
 * all a default broker retains, for every tower, fits in it.
 */
export const DEFAULT_PART_BUDGET_BYTES = 256 * 1024 * 1024;

/** Bytes held by documents, shared by the PartedDocs that draw on it. */
export class PartBudget {
  held = 0;
  constructor(readonly max: number) {}
}

export interface PartLimits {
  /** Unnamed parts kept per document. */
  maxUnnamedPerDoc: number;
  /** Unnamed parts kept across every document. */
  maxUnnamedParts: number;
  /** Charged bytes of unnamed parts across every document. */
  maxUnnamedBytes: number;
}

/**
 * Defaults for unnamed parts: a fresh connection may deliver every part before its head, and the directory of a
 * platform of a million devices is ~31 MiB (~250 parts of 4,000 devices, plus one part per small
 * tenant), so 64 MiB and 32,768 parts leave twice that room; one slice of 4,096 parts is a tenant
 * of 16 million devices (a policy bundle of 4,096 parts, two million grants).
 */
export const DEFAULT_PART_LIMITS: PartLimits = { maxUnnamedPerDoc: 4_096, maxUnnamedParts: 32_768, maxUnnamedBytes: 64 * 1024 * 1024 };

export type PartDropReason = 'out_of_range' | 'unnamed_evicted' | 'too_large' | 'over_budget';

interface HeldPart<P> {
  key: string;
  index: number;
  ref: string;
  value: P;
  bytes: number;
  named: boolean;
}

interface Doc<H, P> {
  head: H | null;
  /** Per part index: content ref → part, oldest first. */
  parts: Map<number, Map<string, HeldPart<P>>>;
  /** The head last completed (a newer head is only applied once complete). */
  done: H | null;
  /** Charged bytes of `head` while it is pending (not `done`), and of `done`. */
  headCost: number;
  doneCost: number;
  /** This document's unnamed parts, oldest first. */
  unnamed: Set<HeldPart<P>>;
}

export interface PartedDocsOptions {
  budget?: PartBudget;
  limits?: Partial<PartLimits>;
  /** A part or head dropped (index null: a head), and why. */
  onDrop?: (key: string, index: number | null, reason: PartDropReason) => void;
}

export class PartedDocs<H extends { parts: string[]; version: number }, P> {
  readonly #docs = new Map<string, Doc<H, P>>();
  readonly #onComplete: (key: string, head: H, parts: P[]) => void;
  readonly #budget: PartBudget;
  readonly #limits: PartLimits;
  readonly #onDrop: (key: string, index: number | null, reason: PartDropReason) => void;
  /** Every document's unnamed parts, oldest first. */
  readonly #unnamed = new Set<HeldPart<P>>();
  /** Documents whose newest head is not complete yet (incomplete() is asked on every bundle message). */
  readonly #pending = new Set<Doc<H, P>>();
  #unnamedBytes = 0;
  #parts = 0;
  #dropped = 0;

  constructor(onComplete: (key: string, head: H, parts: P[]) => void, opts: PartedDocsOptions = {}) {
    this.#onComplete = onComplete;
    this.#budget = opts.budget ?? new PartBudget(DEFAULT_PART_BUDGET_BYTES);
    this.#limits = { ...DEFAULT_PART_LIMITS, ...opts.limits };
    this.#onDrop = opts.onDrop ?? (() => {});
  }

  /** Parts held (named or not). */
  get heldParts(): number {
    return this.#parts;
  }

  /** Parts held that no held head names. */
  get unnamedParts(): number {
    return this.#unnamed.size;
  }

  /** Documents with a head or a part held. */
  get documents(): number {
    return this.#docs.size;
  }

  /** Parts and heads dropped or evicted so far. */
  get dropped(): number {
    return this.#dropped;
  }

  /** A head; `payloadBytes` (its message's size) counts against the budget. */
  head(key: string, head: H, payloadBytes = 0): void {
    const doc = this.#doc(key);
    // A late replay of an older version: the held head stays (same version: a re-publication).
    if (doc.head && doc.head.version > head.version) return;
    // It replaces the pending head, if any (the completed one stays until this one completes).
    const before = { head: doc.head, headCost: doc.headCost };
    const cost = payloadBytes + PART_OVERHEAD_BYTES + HEAD_BYTES_PER_REF * head.parts.length;
    this.#budget.held += cost - doc.headCost;
    doc.headCost = cost;
    doc.head = head;
    // Named first, so that making room never evicts a part this head names.
    this.#classify(doc);
    if (!this.#makeRoom(0)) {
      this.#budget.held -= cost - before.headCost;
      doc.headCost = before.headCost;
      doc.head = before.head;
      this.#classify(doc);
      this.#drop(key, null, 'over_budget');
      this.#forgetIfEmpty(key, doc);
      return;
    }
    if (doc.head !== doc.done) this.#pending.add(doc);
    this.#check(key);
    this.#enforceUnnamed(doc);
  }

  part(key: string, index: number, payload: Buffer, value: P): void {
    if (!Number.isInteger(index) || index < 0 || index > MAX_PART_INDEX) return this.#drop(key, index, 'out_of_range');
    const ref = partRef(payload);
    const existing = this.#docs.get(key);
    const held = existing?.parts.get(index)?.get(ref);
    if (existing && held) {
      // The same content again: it becomes the newest candidate (and the newest unnamed part).
      const candidates = existing.parts.get(index)!;
      candidates.delete(ref);
      candidates.set(ref, held);
      if (!held.named) {
        this.#unnamed.delete(held);
        this.#unnamed.add(held);
        existing.unnamed.delete(held);
        existing.unnamed.add(held);
      }
      this.#check(key);
      return;
    }
    const named = existing !== undefined && isNamed(existing, index, ref);
    const bytes = payload.length + PART_OVERHEAD_BYTES;
    if (!named && bytes > this.#limits.maxUnnamedBytes) return this.#drop(key, index, 'too_large');
    if (!named) {
      // Room among the unnamed: this document's oldest first, then the oldest of all.
      while (existing && existing.unnamed.size >= this.#limits.maxUnnamedPerDoc) this.#evict(existing.unnamed.values().next().value!);
      while (this.#unnamed.size > 0 && (this.#unnamed.size >= this.#limits.maxUnnamedParts || this.#unnamedBytes + bytes > this.#limits.maxUnnamedBytes)) {
        this.#evict(this.#unnamed.values().next().value!);
      }
    }
    if (!this.#makeRoom(bytes)) return this.#drop(key, index, 'over_budget');
    // Evictions may have forgotten the document (no head, no part left): fetched again.
    const doc = this.#doc(key);
    const p: HeldPart<P> = { key, index, ref, value, bytes, named };
    let candidates = doc.parts.get(index);
    if (!candidates) doc.parts.set(index, (candidates = new Map()));
    candidates.set(ref, p);
    this.#budget.held += bytes;
    this.#parts++;
    if (!named) {
      this.#unnamed.add(p);
      doc.unnamed.add(p);
      this.#unnamedBytes += bytes;
    }
    if (candidates.size > CANDIDATES_PER_PART) {
      // The oldest content no held head names (a head and a done head name at most two).
      // Not a cap reached but the bound the format always had: not counted as a drop.
      for (const c of candidates.values()) {
        if (c.named) continue;
        this.#release(doc, c);
        break;
      }
    }
    this.#check(key);
  }

  /** Some document's newest head names a part not held yet (its parts are still arriving). */
  incomplete(): boolean {
    return this.#pending.size > 0;
  }

  /** An empty retained payload on a head or part topic: the document (or that part) is gone. */
  clear(key: string, index: number | null): void {
    const doc = this.#docs.get(key);
    if (!doc) return;
    if (index === null) {
      for (const candidates of [...doc.parts.values()]) for (const p of [...candidates.values()]) this.#release(doc, p);
      this.#budget.held -= doc.headCost + doc.doneCost;
      this.#pending.delete(doc);
      this.#docs.delete(key);
      return;
    }
    for (const p of [...(doc.parts.get(index)?.values() ?? [])]) this.#release(doc, p);
    this.#forgetIfEmpty(key, doc);
  }

  #doc(key: string): Doc<H, P> {
    let d = this.#docs.get(key);
    if (!d) this.#docs.set(key, (d = { head: null, parts: new Map(), done: null, headCost: 0, doneCost: 0, unnamed: new Set() }));
    return d;
  }

  /**
   * Frees `bytes` more of the budget (0: brings it back within its max) by evicting unnamed parts (any document's, oldest first). False
   * when that is not enough: what wanted the room is refused.
   */
  #makeRoom(bytes: number): boolean {
    while (this.#budget.held + bytes > this.#budget.max) {
      const oldest = this.#unnamed.values().next().value;
      if (!oldest) return false;
      this.#evict(oldest);
    }
    return true;
  }

  /** Named or unnamed again, after the document's heads changed; the unnamed caps hold again. */
  #classify(doc: Doc<H, P>): void {
    for (const candidates of doc.parts.values()) {
      for (const p of candidates.values()) {
        const named = isNamed(doc, p.index, p.ref);
        if (named === p.named) continue;
        p.named = named;
        if (named) {
          this.#unnamed.delete(p);
          doc.unnamed.delete(p);
          this.#unnamedBytes -= p.bytes;
        } else {
          this.#unnamed.add(p);
          doc.unnamed.add(p);
          this.#unnamedBytes += p.bytes;
        }
      }
    }
  }

  /** After a head made parts unnamed: the unnamed caps hold again (oldest evicted first). */
  #enforceUnnamed(doc: Doc<H, P>): void {
    while (doc.unnamed.size > this.#limits.maxUnnamedPerDoc) this.#evict(doc.unnamed.values().next().value!);
    while (this.#unnamed.size > this.#limits.maxUnnamedParts || this.#unnamedBytes > this.#limits.maxUnnamedBytes) this.#evict(this.#unnamed.values().next().value!);
  }

  /** Drops a held unnamed part to make room (counted), and its document if nothing is left. */
  #evict(p: HeldPart<P>): void {
    const doc = this.#docs.get(p.key)!;
    this.#release(doc, p);
    this.#drop(p.key, p.index, 'unnamed_evicted');
    this.#forgetIfEmpty(p.key, doc);
  }

  #release(doc: Doc<H, P>, p: HeldPart<P>): void {
    const candidates = doc.parts.get(p.index);
    if (!candidates?.delete(p.ref)) return;
    if (candidates.size === 0) doc.parts.delete(p.index);
    this.#budget.held -= p.bytes;
    this.#parts--;
    if (!p.named) {
      this.#unnamed.delete(p);
      doc.unnamed.delete(p);
      this.#unnamedBytes -= p.bytes;
    }
  }

  #forgetIfEmpty(key: string, doc: Doc<H, P>): void {
    if (doc.head === null && doc.parts.size === 0 && this.#docs.get(key) === doc) this.#docs.delete(key);
  }

  #drop(key: string, index: number | null, reason: PartDropReason): void {
    this.#dropped++;
    this.#onDrop(key, index, reason);
  }

  #check(key: string): void {
    const doc = this.#docs.get(key);
    const head = doc?.head;
    if (!doc || !head || head === doc.done) return;
    const values: P[] = [];
    for (let i = 0; i < head.parts.length; i++) {
      const value = doc.parts.get(i)?.get(head.parts[i]!)?.value;
      if (value === undefined) return;
      values.push(value);
    }
    // Complete: each index keeps what this head names; indexes beyond its count are dropped.
    for (const [i, candidates] of [...doc.parts]) {
      const ref = head.parts[i];
      for (const p of [...candidates.values()]) if (p.ref !== ref) this.#release(doc, p);
    }
    // This head is the completed one now; the one completed before is no longer held.
    this.#budget.held -= doc.doneCost;
    doc.doneCost = doc.headCost;
    doc.headCost = 0;
    doc.done = head;
    this.#pending.delete(doc);
    this.#onComplete(key, head, values);
  }
}

function isNamed<H extends { parts: string[] }>(doc: { head: H | null; done: H | null }, index: number, ref: string): boolean {
  return doc.head?.parts[index] === ref || doc.done?.parts[index] === ref;
}

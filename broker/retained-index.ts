/**
 * The names of the retained topics a broker node holds, as a trie of topic levels, so that the
 * retained messages matching a SUBSCRIBE's filters are found by walking the filters' levels, not
 * by reading every retained message.
 *
 * Why: aedes-persistence-level answers `createRetainedStreamCombi` by reading and decoding every
 * retained message once per filter and testing its topic. Every tower retains its status and
 * gets its own policy bundles, so N towers connecting read O(N) messages each: O(N²) in all.
 * Measured with `edgeplane bench --only memory`: 5,000 towers took ~8 minutes to connect.
 * With this index a SUBSCRIBE costs the topics it matches (backends-level.ts).
 *
 * MQTT 3.1.1 matching [MQTT-4.7]: '+' is one level (an empty one too), '#' is the rest including
 * the parent level itself ('a/#' matches 'a'), and wildcards at the first level never match a
 * topic starting with '$' [MQTT-4.7.2-1].
 */

interface Node {
  /** Null on a leaf: most nodes are the last level of one tower's topic, and a map costs ~200 B. */
  children: Map<string, Node> | null;
  /** Whether a retained message exists at exactly this topic. */
  terminal: boolean;
}

const node = (): Node => ({ children: null, terminal: false });
const NO_CHILDREN: ReadonlyMap<string, Node> = new Map();
const childrenOf = (n: Node): ReadonlyMap<string, Node> => n.children ?? NO_CHILDREN;

export class RetainedIndex {
  readonly #root = node();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(topic: string): void {
    let n = this.#root;
    for (const level of topic.split('/')) {
      let next = n.children?.get(level);
      if (!next) {
        next = node();
        (n.children ??= new Map()).set(level, next);
      }
      n = next;
    }
    if (!n.terminal) this.#size++;
    n.terminal = true;
  }

  delete(topic: string): void {
    const path: Array<[Node, string]> = [];
    let n = this.#root;
    for (const level of topic.split('/')) {
      const next = n.children?.get(level);
      if (!next) return;
      path.push([n, level]);
      n = next;
    }
    if (!n.terminal) return;
    n.terminal = false;
    this.#size--;
    // Prune the branch back to the first node that still leads somewhere.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i]!;
      const child = parent.children!.get(level)!;
      if (child.terminal || child.children !== null) break;
      parent.children!.delete(level);
      if (parent.children!.size === 0) parent.children = null;
    }
  }

  /** Every retained topic matched by at least one of `filters`, each once, in no set order. */
  match(filters: readonly string[]): string[] {
    const out = new Set<string>();
    for (const f of filters) this.#walk(this.#root, f.split('/'), 0, [], out);
    return [...out];
  }

  #walk(n: Node, levels: string[], i: number, path: string[], out: Set<string>): void {
    if (i === levels.length) {
      if (n.terminal) out.add(path.join('/'));
      return;
    }
    const level = levels[i]!;
    if (level === '#') {
      // The parent level itself ('a/#' matches 'a'), unless '#' is the whole filter.
      if (i > 0 && n.terminal) out.add(path.join('/'));
      this.#everything(n, path, i === 0, out);
      return;
    }
    if (level === '+') {
      for (const [name, child] of childrenOf(n)) {
        if (i === 0 && name.startsWith('$')) continue;
        path.push(name);
        this.#walk(child, levels, i + 1, path, out);
        path.pop();
      }
      return;
    }
    const child = n.children?.get(level);
    if (!child) return;
    path.push(level);
    this.#walk(child, levels, i + 1, path, out);
    path.pop();
  }

  /** Every terminal below `n` (not `n` itself). */
  #everything(n: Node, path: string[], atRoot: boolean, out: Set<string>): void {
    for (const [name, child] of childrenOf(n)) {
      if (atRoot && name.startsWith('$')) continue;
      path.push(name);
      if (child.terminal) out.add(path.join('/'));
      this.#everything(child, path, false, out);
      path.pop();
    }
  }
}

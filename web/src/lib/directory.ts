/**
 * Names for the ids that decisions, alerts and commands carry (users, policies, rules, towers), so
 * a row reads "Dana · DLP: dropbox/upload_file → deny" rather than three ULIDs. Loaded once per
 * session (first page of up to 1,000 of each), again after an edit, and once more when an id it
 * does not know shows up (a user created elsewhere, a tower first seen since) — at most once per
 * id, so ids that stay unknown (deleted records) cost nothing. Until then the id is shown shortened.
 */
import type { Api } from './api';
import type { Policy, PolicyRule, Tower, User } from './types';

export interface Names {
  users: Map<string, User>;
  policies: Map<string, Policy>;
  rules: Map<string, PolicyRule>;
  towers: Map<string, Tower>;
}

/** Unknown ids remembered (each triggers one reload); beyond this, no more reloads are triggered. */
const MAX_MISSES = 1000;
const MISS_RELOAD_MS = 500;

const EMPTY: Names = { users: new Map(), policies: new Map(), rules: new Map(), towers: new Map() };

export class Directory {
  #names: Names = EMPTY;
  #loading: Promise<Names> | null = null;
  readonly #missed = new Set<string>();
  #missTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #listeners = new Set<() => void>();

  constructor(
    readonly api: Api,
    readonly canRead: (permission: string) => boolean,
  ) {}

  get names(): Names {
    return this.#names;
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  load(): Promise<Names> {
    this.#loading ??= this.#fetch().finally(() => (this.#loading = null));
    return this.#loading;
  }

  async #fetch(): Promise<Names> {
    const list = async <T extends { id: string }>(permission: string, path: string, key: string): Promise<Map<string, T>> => {
      if (!this.canRead(permission)) return new Map();
      try {
        const body = await this.api.get<Record<string, T[]>>(path, { limit: 1000 });
        return new Map((body[key] ?? []).map((x) => [x.id, x]));
      } catch {
        return new Map();
      }
    };
    const [users, policies, rules, towers] = await Promise.all([
      list<User>('users:read', '/api/v1/users', 'users'),
      list<Policy>('policies:read', '/api/v1/policies', 'policies'),
      list<PolicyRule>('rules:read', '/api/v1/policy-rules', 'rules'),
      list<Tower>('towers:read', '/api/v1/towers', 'towers'),
    ]);
    this.#names = { users, policies, rules, towers };
    for (const l of this.#listeners) l();
    return this.#names;
  }

  user(id: string | null): string {
    if (id === null) return '—';
    return this.#names.users.get(id)?.name ?? this.#miss(id, `…${id.slice(-6)}`);
  }

  policy(id: string | null): string {
    if (id === null) return '—';
    return this.#names.policies.get(id)?.name ?? this.#miss(id, `…${id.slice(-6)}`);
  }

  rule(id: string | null): string {
    if (id === null) return '';
    const r = this.#names.rules.get(id);
    return r ? `${r.app}/${r.action} → ${r.permission}` : this.#miss(id, `rule …${id.slice(-6)}`);
  }

  tower(id: string): string {
    return this.#names.towers.get(id)?.name ?? this.#miss(id, id);
  }

  /** Schedules one reload for an id not seen before; returns the placeholder to show meanwhile. */
  #miss(id: string, placeholder: string): string {
    if (this.#missed.has(id) || this.#missed.size >= MAX_MISSES) return placeholder;
    this.#missed.add(id);
    if (this.#missTimer === null) {
      this.#missTimer = setTimeout(() => {
        this.#missTimer = null;
        void this.load();
      }, MISS_RELOAD_MS);
    }
    return placeholder;
  }
}

/**
 * Names for the ids that decisions, alerts and commands carry (users, policies, rules, towers), so
 * a row reads "Dana · DLP: dropbox/upload_file → deny" rather than three ULIDs. Loaded once per
 * session (first page of up to 1,000 of each) and again on demand after an edit; an id it does
 * not know is shown shortened.
 */
import type { Api } from './api';
import type { Policy, PolicyRule, Tower, User } from './types';

export interface Names {
  users: Map<string, User>;
  policies: Map<string, Policy>;
  rules: Map<string, PolicyRule>;
  towers: Map<string, Tower>;
}

const EMPTY: Names = { users: new Map(), policies: new Map(), rules: new Map(), towers: new Map() };

export class Directory {
  #names: Names = EMPTY;
  #loading: Promise<Names> | null = null;
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
    return this.#names.users.get(id)?.name ?? `…${id.slice(-6)}`;
  }

  policy(id: string | null): string {
    if (id === null) return '—';
    return this.#names.policies.get(id)?.name ?? `…${id.slice(-6)}`;
  }

  rule(id: string | null): string {
    if (id === null) return '';
    const r = this.#names.rules.get(id);
    return r ? `${r.app}/${r.action} → ${r.permission}` : `rule …${id.slice(-6)}`;
  }

  tower(id: string): string {
    return this.#names.towers.get(id)?.name ?? id;
  }
}

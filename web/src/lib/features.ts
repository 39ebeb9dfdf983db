/**
 * What this control plane's API offers beyond what the console can count on, read from its own
 * OpenAPI document (public, at /docs/json): optional operations (an alert's acknowledge/resolve)
 * and which lists can export (a `format` query parameter). A control plane without them simply
 * shows no such button; one that gains them lights them up with no console change.
 */
interface OpenApiDoc {
  paths?: Record<string, Record<string, { parameters?: Array<{ name?: string; in?: string }> }>>;
}

export class Features {
  #doc: Promise<OpenApiDoc> | null = null;

  #load(): Promise<OpenApiDoc> {
    this.#doc ??= fetch('/docs/json', { credentials: 'same-origin' })
      .then((r) => (r.ok ? (r.json() as Promise<OpenApiDoc>) : {}))
      .catch(() => ({}));
    return this.#doc;
  }

  /** Whether `METHOD path` exists (path in OpenAPI form: `/api/v1/dashboard/alerts/{id}/resolve`). */
  async has(method: string, path: string): Promise<boolean> {
    const doc = await this.#load();
    return doc.paths?.[path]?.[method.toLowerCase()] !== undefined;
  }

  /** Whether `GET path` takes `?format=` (csv, json, xml exports). */
  async exports(path: string): Promise<boolean> {
    const doc = await this.#load();
    return (doc.paths?.[path]?.get?.parameters ?? []).some((p) => p.in === 'query' && p.name === 'format');
  }
}

/**
 * A minimal client for the EdgePlane REST API (used by provisioning, the demo and tests): JSON
 * in and out, bearer auth, and errors that carry the API's error code and field issues.
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string | undefined;
  readonly body: unknown;

  constructor(method: string, path: string, status: number, body: unknown) {
    const err = (body as { error?: { code?: string; message?: string } } | null)?.error;
    super(`${method} ${path} → ${status}${err?.message ? `: ${err.message}` : ''}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = err?.code;
    this.body = body;
  }
}

/**
 * `fetch`, with a failure to reach the server explained: undici says only "fetch failed" and
 * keeps the reason (ECONNREFUSED, ENOTFOUND, a certificate error) in `cause`.
 */
export async function apiFetch(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
    const why = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : (err as Error).message;
    let where = url;
    try {
      where = new URL(url).origin;
    } catch {
      // not a URL: fetch's own message says so
    }
    throw new Error(`cannot reach the API at ${where}: ${why}`, { cause: err });
  }
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

export class ApiClient {
  readonly baseUrl: string;
  #token: string | null;
  readonly #maxRateLimitRetries: number;

  constructor(baseUrl: string, token: string | null = null, opts: { maxRateLimitRetries?: number } = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.#token = token;
    this.#maxRateLimitRetries = opts.maxRateLimitRetries ?? 5;
  }

  /** Signs in and returns a client that sends the access token. */
  static async login(baseUrl: string, email: string, password: string): Promise<ApiClient> {
    const anon = new ApiClient(baseUrl);
    const tokens = await anon.request<TokenPair>('POST', '/api/v1/auth/login', { email, password });
    return new ApiClient(baseUrl, tokens.access_token);
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body);
  }

  delete(path: string): Promise<void> {
    return this.request<void>('DELETE', path);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    let res = await apiFetch(`${this.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    // Rate limited: wait as the server asks (bounded), then try again. Bulk provisioning against
    // a deployment with the default per-principal limit is slow but succeeds.
    for (let attempt = 0; res.status === 429 && attempt < this.#maxRateLimitRetries; attempt++) {
      const waitS = Math.min(120, Math.max(1, Number(res.headers.get('retry-after') ?? '1') || 1));
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, waitS * 1000));
      res = await apiFetch(`${this.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    }
    const text = await res.text();
    let parsed: unknown = undefined;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (!res.ok) throw new ApiError(method, path, res.status, parsed);
    return parsed as T;
  }
}

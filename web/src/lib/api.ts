/**
 * The REST client: same-origin fetch with the session's bearer token, the API's error shape
 * turned into ApiError, one retry after refreshing an expired token, and downloads of the API's
 * exports (the bearer token goes in a header, never in a URL: a download is a single-use link the
 * API issues for one export, which the browser saves to disk as it streams, whatever its size).
 */
import { ApiError, errorOf } from './errors';
import type { Session } from './session';

export type Query = Record<string, string | number | boolean | null | undefined>;

export function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  const qs = params.toString();
  return qs === '' ? path : `${path}${path.includes('?') ? '&' : '?'}${qs}`;
}

/** "." or "..", also spelled with %2e: the segments a URL parser resolves (WHATWG URL, path state). */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/**
 * `path` unchanged, or an ApiError when it holds a dot segment. fetch() resolves those, and
 * encodeURIComponent leaves dots alone, so an id from the URL's hash or a name a tenant chose (a
 * role may be called "..") would move a request to another endpoint with the user's token:
 * `DELETE /api/v1/roles/../policies/<id>` is `DELETE /api/v1/policies/<id>`. No API path has one.
 */
export function checkedPath(path: string): string {
  const pathname = path.split(/[?#]/, 1)[0] ?? '';
  // The parser also drops tabs and newlines first, and reads a backslash as a slash.
  if (pathname.replace(/[\t\n\r]/g, '').split(/[/\\]/).some((segment) => DOT_SEGMENT.test(segment))) {
    throw new ApiError(400, 'INVALID_PATH', `Not sent: ${pathname} does not name a record (it holds a "." or ".." segment).`);
  }
  return path;
}

export type ExportFormat = 'csv' | 'json' | 'xml';

/** What an export link is asked for with: the query's set values, as the URL would carry them. */
function exportQuery(query: Query): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '' && k !== 'format') out[k] = String(v);
  return out;
}

export class Api {
  constructor(readonly session: Session) {}

  async #fetch(method: string, path: string, body: unknown, accept: string, retried = false): Promise<Response> {
    checkedPath(path);
    const token = await this.session.accessToken();
    const res = await fetch(path, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        accept,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
      credentials: 'same-origin',
      cache: 'no-store',
    });
    if (res.ok) return res;
    const err = await errorOf(res);
    if (res.status === 401) {
      if (err.code === 'TOKEN_EXPIRED' && !retried) {
        await this.session.refresh();
        return this.#fetch(method, path, body, accept, true);
      }
      // Refused outright, or refused again right after a refresh the API accepted: the token it
      // just issued does not work either, so another refresh would not help.
      this.session.end('Your session ended: please sign in again.');
    }
    throw err;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.#fetch(method, path, body, 'application/json');
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', withQuery(path, query));
  }
  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>('POST', path, body);
  }
  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body);
  }
  delete(path: string): Promise<void> {
    return this.request<void>('DELETE', path);
  }

  /** A text resource (the Prometheus exposition at /metrics). */
  async text(path: string): Promise<string> {
    return (await this.#fetch('GET', path, undefined, 'text/plain')).text();
  }

  /**
   * Saves an export of any size: the API is asked (with the bearer token, in a header) for a
   * single-use link to exactly this export, and the browser's download manager fetches the link and
   * streams the file to disk. The tab never holds the file, and the link is spent by that one
   * download within a minute. The link works only with the cookie the API sets with it (HttpOnly,
   * SameSite=Strict, sent only to /api/v1/downloads): this same-origin fetch (credentials
   * 'same-origin') stores it and the same-origin navigation below sends it, so a link that leaks
   * is worthless in any other browser. A refused export (permission, a bad filter) is an ApiError
   * here, before anything is downloaded.
   */
  async download(path: string, query: Query, format: ExportFormat): Promise<void> {
    checkedPath(path);
    const link = await this.post<{ url: string; expires_at: number }>('/api/v1/downloads', { path, query: exportQuery(query), format });
    const a = document.createElement('a');
    a.href = checkedPath(link.url);
    // Empty: the file is named by the API's Content-Disposition.
    a.download = '';
    a.rel = 'noreferrer';
    document.body.append(a);
    a.click();
    a.remove();
  }
}

export { ApiError };

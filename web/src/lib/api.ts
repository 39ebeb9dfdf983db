/**
 * The REST client: same-origin fetch with the session's bearer token, the API's error shape
 * turned into ApiError, one retry after refreshing an expired token, and downloads of the API's
 * exports (the token goes in a header, never in the URL, so a download is fetched and saved as a
 * blob rather than opened as a link; what the tab holds of one is bounded, see MAX_DOWNLOAD_BYTES).
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

/**
 * The largest export the console saves. A download is held in the tab until it is complete (the
 * token travels in a header, so the browser cannot stream it to disk as a link), and a whole
 * history (a million usage rows is some 200 MB of CSV) would exhaust the tab: past this the
 * download is cancelled, which also stops the API's walk, and the user is told what to do instead.
 */
export const MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024;

function tooLarge(): ApiError {
  return new ApiError(
    413,
    'EXPORT_TOO_LARGE',
    `This export is larger than the console can save (${MAX_DOWNLOAD_BYTES / 1024 / 1024} MB): narrow the filters, or fetch it from the API with an API key.`,
  );
}

/** The body of `res`, refused (and its transfer cancelled) once it passes MAX_DOWNLOAD_BYTES. */
async function boundedBody(res: Response): Promise<Blob> {
  const type = res.headers.get('content-type') ?? '';
  if (Number(res.headers.get('content-length')) > MAX_DOWNLOAD_BYTES) {
    await res.body?.cancel();
    throw tooLarge();
  }
  if (res.body === null) return new Blob([], { type });
  const reader = res.body.getReader();
  const chunks: Array<Uint8Array<ArrayBuffer>> = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_DOWNLOAD_BYTES) {
      await reader.cancel();
      throw tooLarge();
    }
    // A fetched body is never backed by shared memory.
    chunks.push(value as Uint8Array<ArrayBuffer>);
  }
  return new Blob(chunks, { type });
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

  /** Fetches an export and hands it to the browser as a file download. */
  async download(path: string, query: Query, fallbackName: string): Promise<void> {
    const res = await this.#fetch('GET', withQuery(path, query), undefined, '*/*');
    const disposition = res.headers.get('content-disposition') ?? '';
    const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? fallbackName;
    const url = URL.createObjectURL(await boundedBody(res));
    try {
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      document.body.append(a);
      a.click();
      a.remove();
    } finally {
      // The click has started the download; the blob can go once the event loop moves on.
      setTimeout(() => URL.revokeObjectURL(url), 0);
    }
  }
}

export { ApiError };

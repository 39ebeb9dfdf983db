/** The API's error body (`{error: {code, message, issues}}`) as an exception the views can show. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues: Array<{ field: string; message: string }> = [],
    /** Seconds to wait before retrying (429), when the API said. */
    readonly retryAfterS: number | null = null,
  ) {
    super(message);
  }
}

export async function errorOf(res: Response): Promise<ApiError> {
  const retry = Number(res.headers.get('retry-after'));
  const retryAfterS = Number.isFinite(retry) && retry > 0 ? retry : null;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string; issues?: Array<{ field: string; message: string }> } };
    const e = body.error ?? {};
    return new ApiError(res.status, e.code ?? 'HTTP_' + res.status, e.message ?? res.statusText, e.issues ?? [], retryAfterS);
  } catch {
    return new ApiError(res.status, 'HTTP_' + res.status, res.statusText || 'request failed', [], retryAfterS);
  }
}

/** A message fit for a banner, from anything a request may throw. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    // Only polls retry on their own; a refused action must not read as if it will still be done.
    if (err.status === 429) return `Too many requests: try again in ${err.retryAfterS ?? 60} s.`;
    return err.message;
  }
  if (err instanceof TypeError) return 'The control plane cannot be reached.';
  return err instanceof Error ? err.message : String(err);
}

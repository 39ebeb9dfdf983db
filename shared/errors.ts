/**
 * One registry of error codes for the whole product. HTTP status lives here so the API's error
 * handler, the CLI and the workers agree on what a code means.
 */
export const ERROR_CODES = {
  VALIDATION_FAILED: 400,
  BAD_REQUEST: 400,
  UNAUTHENTICATED: 401,
  INVALID_CREDENTIALS: 401,
  TOKEN_EXPIRED: 401,
  FORBIDDEN: 403,
  /** The tenant's plan does not allow this (feature off or limit reached). */
  PLAN_LIMIT_EXCEEDED: 403,
  NOT_FOUND: 404,
  /** The request did not arrive whole within --http-request-timeout-ms (answered by the server). */
  REQUEST_TIMEOUT: 408,
  CONFLICT: 409,
  /** An If-Match precondition failed: the resource changed since the client read it. */
  PRECONDITION_FAILED: 412,
  /** The request is well-formed but cannot be carried out in the current state. */
  UNPROCESSABLE: 422,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  /** The request line or headers exceed the server's limit (answered by the server). */
  HEADERS_TOO_LARGE: 431,
  INTERNAL: 500,
  UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface FieldIssue {
  /** Dotted path of the offending field, e.g. "body.rules.0.app". */
  field: string;
  message: string;
}

export class EdgeplaneError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly issues: FieldIssue[] | undefined;

  constructor(code: ErrorCode, message: string, issues?: FieldIssue[]) {
    super(message);
    this.name = 'EdgeplaneError';
    this.code = code;
    this.status = ERROR_CODES[code];
    this.issues = issues;
  }
}

export function createError(code: ErrorCode, message: string, issues?: FieldIssue[]): EdgeplaneError {
  return new EdgeplaneError(code, message, issues);
}

export function isEdgeplaneError(err: unknown): err is EdgeplaneError {
  return err instanceof EdgeplaneError;
}

/**
 * JSON stored in TEXT columns (rule remediation/escalation, webhook event lists). The store keeps
 * what it was given; the API owns the shape. Equality for policy bumps is rules/policy-version.ts.
 */

export function toJson<T>(value: T | null | undefined): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

export function fromJson<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

/**
 * JSON lets a string escape half of a surrogate pair (`"\uD800"`); JavaScript keeps it, but it is
 * no Unicode text. The store writes it as UTF-8 and reads back U+FFFD, so the record answered with
 * 201 is not the one stored, two different names collapse into one (past the uniqueness check),
 * and strict JSON parsers in other languages refuse our own answer. Request bodies carrying one
 * are refused up front, naming the field. (Raw bytes cannot carry one: the body is decoded as
 * UTF-8, which turns invalid sequences into U+FFFD; only the escape can.)
 */
import { createError } from '../shared/errors.js';

/** In `u` mode a pair is one code point, so this matches only a lone half. */
const LONE_SURROGATE = /\p{Cs}/u;
/** An escaped surrogate half (\uD800–\uDFFF) anywhere in the raw text: the cheap pre-check. */
const ESCAPED_SURROGATE = /\\u[dD][89a-fA-F]/;

/** The dotted path (`body.rules.0.name`) of the first string or key holding a lone surrogate, or null. */
function loneSurrogatePath(value: unknown): string | null {
  // Iterative: a body may nest deeper than the call stack (JSON.parse itself does not recurse).
  const stack: Array<{ value: unknown; path: string }> = [{ value, path: 'body' }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const { value: v, path } = next;
    if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v)) return path;
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => stack.push({ value: item, path: `${path}.${i}` }));
    } else if (typeof v === 'object' && v !== null) {
      for (const [key, item] of Object.entries(v)) {
        if (LONE_SURROGATE.test(key)) return `${path}.${key.replace(/\p{Cs}/gu, '\uFFFD')}`;
        stack.push({ value: item, path: `${path}.${key}` });
      }
    }
  }
  return null;
}

/** Throws VALIDATION_FAILED naming the field when a parsed body (from `text`) holds a lone surrogate. */
export function requireWellFormedUnicode(text: string, body: unknown): void {
  if (!ESCAPED_SURROGATE.test(text)) return;
  const field = loneSurrogatePath(body);
  if (field === null) return;
  const message = 'not valid Unicode text (a lone UTF-16 surrogate escape)';
  throw createError('VALIDATION_FAILED', `${field}: ${message}`, [{ field, message }]);
}

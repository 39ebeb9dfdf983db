/**
 * The errors every adapter raises for the same domain reasons, worded the same way: the API
 * returns them as they are, so an adapter must not invent its own phrasing.
 */
import { createError, type EdgeplaneError } from '../../errors.js';

/** A missing or another tenant's reference: NOT_FOUND naming the field, never "constraint failed". */
export function notFound(field: string, message: string): EdgeplaneError {
  return createError('NOT_FOUND', `${field}: ${message}`, [{ field, message }]);
}

export function conflict(field: string, message: string): EdgeplaneError {
  return createError('CONFLICT', `${field}: ${message}`, [{ field, message }]);
}

export function invalid(field: string, message: string): EdgeplaneError {
  return createError('VALIDATION_FAILED', `${field}: ${message}`, [{ field, message }]);
}

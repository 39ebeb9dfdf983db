import { monotonicFactory } from 'ulid';

/** Crockford base32 ULID: 26 chars, time-ordered, so ids double as stable pagination cursors. */
export const ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/**
 * Identifiers that may appear inside an MQTT topic level (tenant, tower, device ids).
 * Excludes '/', '+', '#' and '$' so an id can never widen a topic filter [MQTT-4.7.1].
 */
export const TOPIC_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** Catalogue keys for apps and actions ("slack", "upload_file"); '*' is reserved for wildcards. */
export const KEY_RE = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

export type IdFactory = () => string;

/** A monotonic ULID factory: ids minted in the same millisecond still sort in creation order. */
export function createIdFactory(): IdFactory {
  const next = monotonicFactory();
  return () => next();
}

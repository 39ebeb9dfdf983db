/**
 * Webhook request signing, shared by the deliverer and by integrators who verify deliveries.
 *
 * Every delivery carries `x-edgeplane-signature: t=<unix seconds>,v1=<hex>` where
 * `<hex> = HMAC-SHA256(secret, "<t>.<raw body>")`. A receiver verifies it with
 * `verifyWebhookSignature(secret, header, rawBody, Date.now())`: over the raw bytes it received
 * (before any JSON parsing), and rejecting timestamps older than the tolerance so a captured
 * request cannot be replayed later. Several `v1=` entries may appear (any match is accepted).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-edgeplane-signature';
export const EVENT_HEADER = 'x-edgeplane-event';
export const DELIVERY_HEADER = 'x-edgeplane-delivery';

const HEX_SHA256_RE = /^[0-9a-f]{64}$/;

function hmacHex(secret: string, t: number, body: string): string {
  return createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
}

/** The signature header value for `body` sent at `nowMs` (epoch milliseconds). */
export function signWebhook(secret: string, body: string, nowMs: number): string {
  const t = Math.floor(nowMs / 1000);
  return `t=${t},v1=${hmacHex(secret, t, body)}`;
}

/**
 * True when `header` carries a v1 signature of `body` under `secret`, made within `toleranceS`
 * seconds of `nowMs` (epoch milliseconds). Comparison is constant-time.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | null | undefined,
  body: string,
  nowMs: number,
  toleranceS = 300,
): boolean {
  if (!header) return false;
  let t: number | null = null;
  const candidates: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === 't' && /^\d{1,12}$/.test(v)) t = Number(v);
    else if (k === 'v1' && HEX_SHA256_RE.test(v)) candidates.push(v);
  }
  if (t === null || candidates.length === 0) return false;
  if (Math.abs(nowMs / 1000 - t) > toleranceS) return false;
  const expected = Buffer.from(hmacHex(secret, t, body), 'hex');
  return candidates.some((c) => timingSafeEqual(Buffer.from(c, 'hex'), expected));
}

/**
 * One webhook POST, to public addresses only (shared/net/address-policy.ts). The URL was checked
 * when it was saved, but a name's DNS answer can change afterwards (or answer differently each
 * time: DNS rebinding), so every attempt resolves the name again inside the connection's own
 * lookup, refuses it if any answer is not public, and connects only to the answers it checked:
 * there is no second resolution between the check and the connect. Numeric hosts (in any notation)
 * are checked without DNS. Redirects are not followed. `allowPrivate` (the operator's
 * --webhook-allow-private) lifts the address rules for on-premises receivers.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { classifyAddress, parseHostAddress, targetProblem } from '../../shared/net/address-policy.js';

export interface WebhookPost {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

/** Resolves with the receiver's HTTP status; rejects on network errors, timeouts and refusals. */
export type WebhookTransport = (post: WebhookPost) => Promise<{ status: number }>;

/** The target is not one the platform calls: recorded on the attempt like a network error. */
export class TargetRefused extends Error {
  constructor(detail: string) {
    super(`target refused: ${detail} (operators may allow private targets with --webhook-allow-private)`);
    this.name = 'TargetRefused';
  }
}

type Resolve = (host: string, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

const systemResolve: Resolve = (host, callback) => dnsLookup(host, { all: true, verbatim: true }, callback);

/**
 * A `lookup` for http.request that answers only with checked addresses. Node calls it with
 * `all: true` when it races address families (autoSelectFamily), else for one address.
 */
function checkedLookup(resolve: Resolve): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const refused = addresses.find((a) => classifyAddress(a.address) !== 'public');
      if (refused || addresses.length === 0) {
        const detail = refused ? `${hostname} resolves to ${refused.address} (${classifyAddress(refused.address) ?? 'invalid'})` : `${hostname} has no address`;
        return callback(Object.assign(new TargetRefused(detail), { code: 'ETARGETREFUSED' }), '', 0);
      }
      const family = options.family === 6 ? 6 : options.family === 4 ? 4 : 0;
      const usable = family === 0 ? addresses : addresses.filter((a) => a.family === family);
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, usable);
      const first = usable[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no IPv${family} address`), { code: 'ENOTFOUND' }), '', 0);
      return callback(null, first.address, first.family);
    });
  };
}

export interface WebhookTransportOptions {
  allowPrivate: boolean;
  /** DNS resolution (tests pin answers); default the system resolver, like every other lookup. */
  resolve?: Resolve;
}

export function createWebhookTransport(opts: WebhookTransportOptions): WebhookTransport {
  const lookup = opts.allowPrivate ? undefined : checkedLookup(opts.resolve ?? systemResolve);
  return (post) =>
    new Promise((resolve, reject) => {
      const problem = targetProblem(post.url, opts.allowPrivate);
      if (problem !== null) {
        reject(new TargetRefused(problem));
        return;
      }
      const url = new URL(post.url);
      const numeric = parseHostAddress(url.hostname);
      const options: RequestOptions = {
        method: 'POST',
        headers: { ...post.headers, 'content-length': Buffer.byteLength(post.body) },
        signal: AbortSignal.timeout(post.timeoutMs),
        // A fresh connection per attempt: nothing pooled outlives the check it was made under.
        agent: false,
        // Numeric hosts were checked above and are connected to as written; names only through
        // the checked lookup.
        ...(numeric === null && lookup ? { lookup } : {}),
      };
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, options, (res: IncomingMessage) => {
        // The body is not used: release the connection.
        res.resume();
        res.on('error', () => {});
        resolve({ status: res.statusCode ?? 0 });
        res.destroy();
      });
      req.on('error', (err: Error) => {
        const timedOut = err.name === 'AbortError' || err.name === 'TimeoutError';
        reject(timedOut ? Object.assign(new Error(`timeout after ${post.timeoutMs} ms`), { name: 'TimeoutError' }) : err);
      });
      req.end(post.body);
    });
}

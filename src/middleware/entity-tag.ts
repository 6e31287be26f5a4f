// The strong ETag the cache gives a 200 that has none: the value the `etag`
// package gives a body ('"<length in hex>-<27 characters of its base64
// SHA-1>"', so an ETag the app's own Express would make and ours agree), made
// with node's one-shot crypto.hash where there is one: no Hash object, no
// stream machinery, about half the cost on a 1.5 KB body (a miss computes it
// on every fill).
import * as crypto from 'node:crypto';
import computeEtag from 'etag';

type OneShotHash = (algorithm: string, data: Uint8Array, encoding: 'base64') => string;
// Node >= 20.12 and 21.7; older 20.x goes through etag itself.
const oneShot = (crypto as { hash?: OneShotHash }).hash;

export function entityTag(body: Buffer): string {
  // The etag package's constant for an empty body is this same value (the SHA-1 of no bytes).
  if (oneShot === undefined) return computeEtag(body);
  return `"${body.length.toString(16)}-${oneShot('sha1', body, 'base64').slice(0, 27)}"`;
}

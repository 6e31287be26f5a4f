// Store keys of the data API: `namespace:d:` and the caller's key. Redis
// reads keys as UTF-8, where every lone surrogate becomes U+FFFD, so those
// are escaped (as in HTTP keys) and '%', the escape character, with them:
// two different keys never share an entry. '{' and '}' are escaped too: the
// fill lock and the key's counter hash-tag the whole store key (`{key}:lock`),
// which must then land in the entry's Cluster slot. A key longer than a bound is
// replaced by its digest, so no per-key structure holds a 10 KB key. Keys of
// a namespace() view follow the view's escaped names, each ended by '%:',
// which no escaped key contains: a view's keys never meet the root's.
import { createHash } from 'node:crypto';

/** Escaped keys longer than this are replaced by a digest. */
export const MAX_DATA_KEY_LENGTH = 256;

const NEEDS_ESCAPE = /[%{}\uD800-\uDFFF]/;
const ESCAPED = /[%{}]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function encode(ch: string): string {
  const code = ch.charCodeAt(0);
  return code < 0x80 ? '%' + code.toString(16).toUpperCase() : '%u' + code.toString(16).toUpperCase();
}

/** `key` with '%', '{', '}' and lone surrogates escaped. */
export function escapeDataKey(key: string): string {
  return NEEDS_ESCAPE.test(key) ? key.replace(ESCAPED, encode) : key;
}

/**
 * `namespace:d:key`, escaped, or `namespace:d:%#digest` for a long key ('%#'
 * is never an escape). `prefix`: a view's escaped names, each ended by '%:'.
 */
export function dataStoreKey(namespace: string, key: string, prefix = ''): string {
  const escaped = prefix + escapeDataKey(key);
  if (escaped.length <= MAX_DATA_KEY_LENGTH) return namespace + ':d:' + escaped;
  // The escaped form: the raw key's lone surrogates would reach the digest as U+FFFD.
  return namespace + ':d:%#' + createHash('sha256').update(escaped).digest('base64url');
}

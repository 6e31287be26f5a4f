// Implicit tags of a request: `user:<id>` for user-scoped entries and
// `path:<prefix>` for each whole-segment prefix of the path, so
// invalidateUser / invalidatePrefix are one version bump each, whatever the
// number of entries they cover. Path tags use the path as the app sees it
// (normalized like the route table, then percent-decoded), so a prefix written
// with `req.params` values (`/users/josé`) meets the entries of `/users/jos%C3%A9`.
import { normalizeRoutePath, pathOf } from './path-normalize.js';

/** Entries carry path tags for at most this many leading segments; deeper prefixes share the deepest tag. */
export const MAX_PATH_TAG_DEPTH = 8;

/**
 * The tag every entry carries for its own key: invalidateKey() / delete() bump
 * it, so a fill that was running when its key was invalidated never lands.
 */
export function keyTag(key: string): string {
  return 'key:' + key;
}

/** The tag invalidateUser(id) bumps. */
export function userTag(user: string): string {
  return 'user:' + wellFormedTag(user);
}

/**
 * A tag as Redis, the invalidation bus and L2 entries carry it: UTF-8, where
 * every lone UTF-16 surrogate becomes U+FFFD, as toWellFormed() makes it. An
 * entry's tags and an invalidation's are made so here too, or the two would
 * not be the same string in this process (an invalidation lost), while Redis
 * sees one tag.
 * Two tags that differ only there are one tag: invalidating one invalidates
 * the other's entries too, never fewer.
 */
export function wellFormedTag(tag: string): string {
  return tag.toWellFormed();
}

const ESCAPE_RUN = /(?:%[0-9A-Fa-f]{2})+/g;

/** UTF-8 sequence length announced by a lead byte; 0 for a byte that cannot start one. */
function sequenceLength(byte: number): number {
  return byte < 0x80 ? 1 : byte >= 0xc2 && byte <= 0xdf ? 2 : byte >= 0xe0 && byte <= 0xef ? 3 : byte >= 0xf0 && byte <= 0xf4 ? 4 : 0;
}

/** Decodes a run of escapes: each valid UTF-8 sequence becomes its character; %2F and invalid bytes stay escaped. */
function decodeRun(run: string): string {
  const count = run.length / 3;
  let out = '';
  for (let i = 0; i < count; ) {
    const byte = parseInt(run.slice(i * 3 + 1, i * 3 + 3), 16);
    const n = sequenceLength(byte);
    // An encoded '/' is data inside one segment: decoding it would move segment boundaries.
    if (n > 0 && byte !== 0x2f && i + n <= count) {
      try {
        out += decodeURIComponent(run.slice(i * 3, (i + n) * 3));
        i += n;
        continue;
      } catch {
        // not valid UTF-8 (overlong, surrogate, bad continuation): keep the lead byte escaped
      }
    }
    out += run.slice(i * 3, i * 3 + 3);
    i++;
  }
  return out;
}

/**
 * The form of a path in path tags: route-normalized, then every valid escape
 * but %2F decoded, lower-cased again. Encoded and decoded spellings of one
 * path ('/users/john%20doe', '/users/john doe') meet; segments never change.
 */
export function tagPath(path: string): string {
  const normalized = normalizeRoutePath(path);
  return normalized.indexOf('%') === -1 ? normalized : normalized.replace(ESCAPE_RUN, decodeRun).toLowerCase();
}

/** The path tag of a tag-form path, cut to MAX_PATH_TAG_DEPTH segments; undefined for '/'. */
function tagOfTagPath(path: string): string | undefined {
  if (path === '/') return undefined;
  let end = 0;
  for (let depth = 0; depth < MAX_PATH_TAG_DEPTH; depth++) {
    end = path.indexOf('/', end + 1);
    if (end === -1) return 'path:' + path;
  }
  return 'path:' + path.slice(0, end);
}

/**
 * The tag of every entry under a path prefix (whole segments): the prefix in
 * tag form, cut to MAX_PATH_TAG_DEPTH segments (cutting only widens what is
 * invalidated). undefined for '/', which covers everything.
 */
export function prefixTag(prefix: string): string | undefined {
  return tagOfTagPath(tagPath(prefix));
}

/**
 * The tags invalidatePrefix(prefix) bumps. The prefix is read as the client
 * sent it (escapes decoded) and, when it holds a '%', also as the app sees it
 * (`req.params` values are decoded: an id '100%' or '%41' is literal text);
 * with a '?' or '#', also as a request target's path. undefined when a
 * reading is '/', which covers everything.
 */
export function prefixTags(prefix: string): string[] | undefined {
  const tags = readingsOf(prefix);
  const path = pathOf(prefix);
  // A '?' or '#' begins the query or fragment of a request target (req.originalUrl), or is a
  // character of a decoded value ('what?'): both are read, since invalidating more is always safe.
  // Stryker disable next-line ConditionalExpression: a shortcut; the same path reads the same tags, which are not added twice (and a prefix reading '/' has a path reading '/')
  if (path === prefix || tags === undefined) return tags;
  const cut = readingsOf(path);
  // Never widened to everything: '/?x=1' is no invalidatePrefix('/'), which must be asked for as such.
  if (cut === undefined) return tags;
  // Stryker disable next-line ConditionalExpression: a tag listed twice invalidates the same entries once
  for (const tag of cut) if (!tags.includes(tag)) tags.push(tag);
  return tags;
}

/** prefixTags for one reading of the prefix: as sent and, with a '%', as decoded text. */
function readingsOf(prefix: string): string[] | undefined {
  const encoded = prefixTag(prefix);
  if (encoded === undefined) return undefined;
  if (prefix.indexOf('%') === -1) return [encoded];
  const decoded = prefixTag(prefix.replace(/%/g, '%25'));
  if (decoded === undefined) return undefined;
  return decoded === encoded ? [encoded] : [encoded, decoded];
}

/** Path tags for a path in tag form (see tagPath): '/a/b/c' -> ['path:/a', 'path:/a/b', 'path:/a/b/c']. */
export function pathTags(normalizedPath: string): string[] {
  const tags: string[] = [];
  if (normalizedPath === '/') return tags;
  let end = 0;
  while (tags.length < MAX_PATH_TAG_DEPTH) {
    end = normalizedPath.indexOf('/', end + 1);
    if (end === -1) {
      tags.push('path:' + normalizedPath);
      break;
    }
    tags.push('path:' + normalizedPath.slice(0, end));
  }
  return tags;
}

/** All implicit tags of a request: its user tag (when user-scoped) and its path tags. */
export function implicitTags(path: string, user?: string): string[] {
  const tags = pathTags(tagPath(path));
  if (user !== undefined) tags.unshift(userTag(user));
  return tags;
}

/**
 * The tag of one path exactly (every query variant of it, nothing below it):
 * what a successful write to that path invalidates (RFC 9111 §4.4). undefined
 * for '/', which a write never invalidates.
 */
export function exactPathTag(path: string): string | undefined {
  const form = tagPath(path);
  return form === '/' ? undefined : 'at:' + form;
}

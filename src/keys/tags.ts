// Implicit tags of a request: `user:<id>` for user-scoped entries and
// `path:<prefix>` for each whole-segment prefix of the normalized path, so
// invalidateUser / invalidatePrefix are one version bump each, whatever the
// number of entries they cover.
import { normalizeRoutePath } from './path-normalize.js';

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
  return 'user:' + user;
}

/**
 * The tag invalidatePrefix(prefix) bumps: the prefix normalized like the route
 * table, cut to MAX_PATH_TAG_DEPTH segments (cutting only widens what is
 * invalidated). undefined for '/', which covers everything.
 */
export function prefixTag(prefix: string): string | undefined {
  const normalized = normalizeRoutePath(prefix);
  if (normalized === '/') return undefined;
  let end = 0;
  for (let depth = 0; depth < MAX_PATH_TAG_DEPTH; depth++) {
    end = normalized.indexOf('/', end + 1);
    if (end === -1) return 'path:' + normalized;
  }
  return 'path:' + normalized.slice(0, end);
}

/** Path tags for a normalized path: '/a/b/c' -> ['path:/a', 'path:/a/b', 'path:/a/b/c']. */
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
  const tags = pathTags(normalizeRoutePath(path));
  if (user !== undefined) tags.unshift(userTag(user));
  return tags;
}

/**
 * The tag of one path exactly (every query variant of it, nothing below it):
 * what a successful write to that path invalidates (RFC 9111 §4.4). undefined
 * for '/', which a write never invalidates.
 */
export function exactPathTag(path: string): string | undefined {
  const normalized = normalizeRoutePath(path);
  return normalized === '/' ? undefined : 'at:' + normalized;
}

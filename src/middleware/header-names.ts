// Header names shared by every decoded entry. An entry is decoded from its
// stored JSON, and V8's JSON.parse gives each decoded entry its own copy of
// every string longer than ten characters: `content-type`, `x-powered-by`,
// `cache-control` would cost 32 bytes or more per entry and per name, for
// names nearly every entry repeats. A process-wide table keeps one copy. It
// only grows, up to a bound (names come from handlers, a fixed vocabulary in
// practice), so whether a name is shared is known when the entry is stored
// and stays true when it is decoded: the charge L1 takes does not move.

/** Distinct names kept; past it, names are an entry's own (and charged to it). */
const MAX_SHARED_NAMES = 1_024;
/** Longer names are an entry's own: the table holds at most 1,024 short strings (about 80 KB). */
const MAX_SHARED_LENGTH = 64;

const shared = new Map<string, string>();

/** The shared copy of `name`, kept from now on if there is room; undefined when it is too long, or the table is full and `name` is not in it. */
export function sharedHeaderName(name: string): string | undefined {
  if (name.length > MAX_SHARED_LENGTH) return undefined;
  const known = shared.get(name);
  if (known !== undefined || shared.size >= MAX_SHARED_NAMES) return known;
  shared.set(name, name);
  return name;
}

/**
 * Empties the table, for tests that fill it: entries charged before keep the
 * charge they took (a name shared then may now be charged on decoding).
 */
export function forgetSharedHeaderNames(): void {
  shared.clear();
}

// The stored head's JSON (http-entry.ts StoredHead), character for character
// what JSON.stringify gives, written by hand. Every fill serializes one, and
// the generic serializer looks up toJSON on the head and on every [name, value]
// pair before writing it: about 12k instructions of a Koa L1 miss's ~124k
// (callgrind, h166), for a few hundred characters that almost never need
// escaping. Anything unusual (a value to escape, a nested value other than
// the pairs) is left to JSON.stringify, so the bytes never differ.

/** What JSON.stringify would not write as it is: `"`, `\`, control characters, surrogates (escaped when lone). */
const ESCAPED = /["\\\x00-\x1f\ud800-\udfff]/;

/** `text` as a JSON string. */
function jsonString(text: string): string {
  return ESCAPED.test(text) ? JSON.stringify(text) : `"${text}"`;
}

/** The pairs as a JSON array of two-string arrays. */
function pairsJson(pairs: ReadonlyArray<readonly [string, string]>): string {
  let out = '[';
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]!;
    out += `${i === 0 ? '[' : ',['}${jsonString(pair[0])},${jsonString(pair[1])}]`;
  }
  return `${out}]`;
}

/**
 * JSON.stringify(head) for a head whose fields are numbers, strings, the
 * header pairs (`h`) or anything JSON.stringify is left to (`o`, `m`), in the
 * order they were set.
 */
export function headJson(head: object): string {
  let out = '{';
  for (const name in head) {
    const value = (head as Record<string, unknown>)[name];
    if (value === undefined) continue;
    const json = typeof value === 'string' ? jsonString(value) : typeof value === 'number' && Number.isFinite(value) ? String(value) : name === 'h' ? pairsJson(value as Array<[string, string]>) : JSON.stringify(value);
    out += `${out.length === 1 ? '"' : ',"'}${name}":${json}`;
  }
  return `${out}}`;
}

// An RFC 8941 (Structured Field Values) Dictionary, parsed as its section 4.2
// says: strictly, failing on anything outside the grammar, so that a targeted
// cache-control field that does not parse is ignored as a whole (RFC 9213
// §2.1). Only what cache directives need is kept: each member's bare item or
// inner list, without parameters.

export type BareItem =
  | { readonly type: 'integer' | 'decimal'; readonly value: number }
  | { readonly type: 'string' | 'token' | 'binary'; readonly value: string }
  | { readonly type: 'boolean'; readonly value: boolean };

export type Member = BareItem | { readonly type: 'inner-list'; readonly value: readonly BareItem[] };

class Unparsable extends Error {}

const isLcAlpha = (c: string) => c >= 'a' && c <= 'z';
const isAlpha = (c: string) => isLcAlpha(c) || (c >= 'A' && c <= 'Z');
const isDigit = (c: string) => c >= '0' && c <= '9';
const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

class Input {
  i = 0;
  constructor(readonly s: string) {}
  get done(): boolean {
    return this.i >= this.s.length;
  }
  /** The next character ('' at the end); a method, so that TypeScript does not narrow it between reads. */
  c(): string {
    return this.s.charAt(this.i);
  }
  skipSp(): void {
    while (this.c() === ' ') this.i++;
  }
  skipOws(): void {
    while (this.c() === ' ' || this.c() === '\t') this.i++;
  }
}

/** The members in order (a later duplicate key replaces the earlier value), or undefined if `text` is no Dictionary. */
export function parseDictionary(text: string): Map<string, Member> | undefined {
  const input = new Input(text);
  const members = new Map<string, Member>();
  try {
    input.skipSp();
    while (!input.done) {
      const key = parseKey(input);
      let member: Member;
      if (input.c() === '=') {
        input.i++;
        member = input.c() === '(' ? parseInnerList(input) : parseItem(input);
      } else {
        member = { type: 'boolean', value: true };
        parseParameters(input);
      }
      // A repeated key keeps its first place with the later value (§4.2.2).
      members.set(key, member);
      input.skipOws();
      if (input.done) break;
      if (input.c() !== ',') return undefined;
      input.i++;
      input.skipOws();
      if (input.done) return undefined;
    }
    return members;
  } catch (err) {
    if (err instanceof Unparsable) return undefined;
    throw err;
  }
}

function parseKey(input: Input): string {
  const start = input.i;
  if (!isLcAlpha(input.c()) && input.c() !== '*') throw new Unparsable();
  input.i++;
  while (!input.done && (isLcAlpha(input.c()) || isDigit(input.c()) || '_-.*'.includes(input.c()))) input.i++;
  return input.s.slice(start, input.i);
}

function parseParameters(input: Input): void {
  while (input.c() === ';') {
    input.i++;
    input.skipSp();
    parseKey(input);
    if (input.c() === '=') {
      input.i++;
      parseBareItem(input);
    }
  }
}

function parseItem(input: Input): BareItem {
  const item = parseBareItem(input);
  parseParameters(input);
  return item;
}

function parseInnerList(input: Input): Member {
  input.i++; // '('
  const items: BareItem[] = [];
  while (!input.done) {
    input.skipSp();
    if (input.c() === ')') {
      input.i++;
      parseParameters(input);
      return { type: 'inner-list', value: items };
    }
    items.push(parseItem(input));
    if (input.c() !== ' ' && input.c() !== ')') throw new Unparsable();
  }
  throw new Unparsable();
}

function parseBareItem(input: Input): BareItem {
  const c = input.c();
  if (c === '-' || isDigit(c)) return parseNumber(input);
  if (c === '"') return parseString(input);
  if (c === ':') return parseBinary(input);
  if (c === '?') return parseBoolean(input);
  if (isAlpha(c) || c === '*') return parseToken(input);
  throw new Unparsable();
}

function parseNumber(input: Input): BareItem {
  const start = input.i;
  if (input.c() === '-') input.i++;
  // Where the digits begin: §4.2.4 counts their length without the sign (the point included).
  const first = input.i;
  if (!isDigit(input.c())) throw new Unparsable();
  let dot = -1;
  while (!input.done) {
    const c = input.c();
    if (isDigit(c)) input.i++;
    else if (c === '.' && dot === -1) {
      // At most 12 digits before the point.
      if (input.i - first > 12) throw new Unparsable();
      dot = input.i++;
    } else break;
    if (input.i - first > (dot === -1 ? 15 : 16)) throw new Unparsable();
  }
  const text = input.s.slice(start, input.i);
  if (dot === -1) return { type: 'integer', value: Number(text) };
  const fraction = input.i - dot - 1;
  if (fraction < 1 || fraction > 3) throw new Unparsable();
  return { type: 'decimal', value: Number(text) };
}

function parseString(input: Input): BareItem {
  input.i++; // '"'
  let out = '';
  while (!input.done) {
    const c = input.c();
    input.i++;
    if (c === '\\') {
      const next = input.c();
      if (next !== '"' && next !== '\\') throw new Unparsable();
      out += next;
      input.i++;
    } else if (c === '"') return { type: 'string', value: out };
    else if (c < ' ' || c > '~') throw new Unparsable();
    else out += c;
  }
  throw new Unparsable();
}

function parseToken(input: Input): BareItem {
  const start = input.i++;
  while (!input.done && (TCHAR.test(input.c()) || input.c() === ':' || input.c() === '/')) input.i++;
  return { type: 'token', value: input.s.slice(start, input.i) };
}

function parseBinary(input: Input): BareItem {
  const end = input.s.indexOf(':', input.i + 1);
  if (end === -1) throw new Unparsable();
  const content = input.s.slice(input.i + 1, end);
  if (!BASE64.test(content)) throw new Unparsable();
  input.i = end + 1;
  return { type: 'binary', value: content };
}

function parseBoolean(input: Input): BareItem {
  const c = input.s.charAt(input.i + 1);
  if (c !== '0' && c !== '1') throw new Unparsable();
  input.i += 2;
  return { type: 'boolean', value: c === '1' };
}

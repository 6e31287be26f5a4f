// The HTTP Date of now (RFC 9110 §5.6.7), built at most once per second: a
// fill sets it on the answer itself so that the stored copy replays the very
// Date its first answer carried (Age is computed against it, RFC 9111 §4.2.3).

let second = -1;
let text = '';

export function httpDateNow(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== second) {
    second = s;
    text = new Date(s * 1000).toUTCString();
  }
  return text;
}

const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };
const MONTH = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
/** IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
/** rfc850-date (obsolete): `Sunday, 06-Nov-94 08:49:37 GMT`. */
const RFC850_DATE = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
/** asctime-date (obsolete): `Sun Nov  6 08:49:37 1994`. */
const ASCTIME_DATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} (\\d{2}| \\d) ${TIME} (\\d{4})$`);

/**
 * An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate or one of the two obsolete
 * forms, case-sensitive) as ms since the epoch; NaN for anything else.
 * Date.parse would also read ISO dates, upper-case names and bare years,
 * which RFC 9111 §5.3 has a cache treat as invalid (Expires: already past)
 * and RFC 9110 §13.1.3 has it ignore (If-Modified-Since).
 */
export function parseHttpDate(value: string, now = Date.now()): number {
  const text = value.trim();
  let m = IMF_FIXDATE.exec(text);
  if (m !== null) return utc(Number(m[3]), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  m = RFC850_DATE.exec(text);
  if (m !== null) {
    // A two-digit year more than 50 years ahead is the latest past year with those digits (§5.6.7).
    const thisYear = new Date(now).getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + Number(m[3]);
    if (year > thisYear + 50) year -= 100;
    return utc(year, m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  }
  m = ASCTIME_DATE.exec(text);
  if (m !== null) return utc(Number(m[6]), m[1]!, Number(m[2]!.trim()), m[3]!, m[4]!, m[5]!);
  return Number.NaN;
}

/**
 * The instant, NaN for a time out of range (60 seconds: a leap second) or a
 * day the month does not have (day 00 or 31 Nov roll into another month).
 */
function utc(year: number, month: string, day: number, hh: string, mm: string, ss: string): number {
  const h = Number(hh);
  const min = Number(mm);
  const s = Number(ss);
  if (h > 23 || min > 59 || s > 60) return Number.NaN;
  const monthIndex = MONTHS[month]!;
  const t = Date.UTC(year, monthIndex, day, h, min, Math.min(s, 59));
  return new Date(t).getUTCMonth() === monthIndex ? t : Number.NaN;
}

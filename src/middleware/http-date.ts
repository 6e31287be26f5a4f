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

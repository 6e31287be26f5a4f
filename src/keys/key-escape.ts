// Escaping for key components. Every separator the key format uses (':', '?',
// ',', '=') and the escape character itself are percent-encoded inside
// components, so no value can forge a boundary; '{' and '}' are encoded too so
// a path cannot pick the Redis Cluster hash slot, and '#' so no component can
// look like a hashed key.

const SPECIAL = /[%:?#{},=]/;
const SPECIAL_ALL = /[%:?#{},=]/g;

function encode(ch: string): string {
  return '%' + ch.charCodeAt(0).toString(16).toUpperCase();
}

/** Escapes one key component. Returns the input itself when nothing needs escaping. */
export function escapeKeyComponent(value: string): string {
  return SPECIAL.test(value) ? value.replace(SPECIAL_ALL, encode) : value;
}

// Escaping for key components. Every separator the key format uses (':', '?',
// ',', '=') and the escape character itself are percent-encoded inside
// components, so no value can forge a boundary; '{' and '}' are encoded too so
// a path cannot pick the Redis Cluster hash slot, and '#' so no component can
// look like a hashed key.

// Lone UTF-16 surrogates are encoded too: Redis keys travel as UTF-8, where
// every lone surrogate becomes U+FFFD and two different keys would meet.
const SPECIAL = /[%:?#{},=\uD800-\uDFFF]/;
const SPECIAL_ALL = /[%:?#{},=]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function encode(ch: string): string {
  const code = ch.charCodeAt(0);
  return code >= 0xd800 ? '%u' + code.toString(16).toUpperCase() : '%' + code.toString(16).toUpperCase();
}

/** Escapes one key component. Returns the input itself when nothing needs escaping. */
export function escapeKeyComponent(value: string): string {
  return SPECIAL.test(value) ? value.replace(SPECIAL_ALL, encode) : value;
}

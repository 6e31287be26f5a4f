// The one response body every HTTP scenario sends: 1,536 bytes of JSON
// (DESIGN.md section 6: "the same 1.5 KB JSON body"), built the same way on
// every run so the server scenarios and the runner's checks agree byte for byte.
import { createHash } from 'node:crypto';

export const BODY_BYTES = 1536;
/** The path every scenario serves; '/api' is in the tiercache route table. */
export const BENCH_PATH = '/api/catalog';

function build() {
  const items = [];
  for (let i = 1; i <= 12; i++) {
    items.push({ id: i, sku: `SKU-${String(i * 7919).padStart(6, '0')}`, title: `Item number ${i}`, price: Math.round(i * 3.75 * 100) / 100, tags: ['bench', `group-${i % 3}`] });
  }
  const doc = { generated: '2026-01-01T00:00:00.000Z', count: items.length, items, pad: '' };
  const base = Buffer.byteLength(JSON.stringify(doc));
  if (base > BODY_BYTES) throw new Error(`bench body base is ${base} bytes, over ${BODY_BYTES}`);
  doc.pad = 'x'.repeat(BODY_BYTES - base);
  const buf = Buffer.from(JSON.stringify(doc), 'utf8');
  if (buf.length !== BODY_BYTES) throw new Error(`bench body is ${buf.length} bytes, expected ${BODY_BYTES}`);
  return buf;
}

/** The prebuilt bytes (do not mutate). */
export const BODY = build();
/** The same document as a JS value, for handlers that serialize it themselves. */
export const BODY_OBJECT = JSON.parse(BODY.toString('utf8'));
export const BODY_SHA256 = createHash('sha256').update(BODY).digest('hex');
export const CONTENT_TYPE = 'application/json; charset=utf-8';

/**
 * What the miss scenarios' handlers build on every request: BODY_OBJECT's
 * document with the request's `miss` query value folded in, so every URL gets
 * bytes of its own (about 1.5 KB once serialized). A fresh object each call.
 */
export function catalogFor(miss) {
  return { ...BODY_OBJECT, query: { miss } };
}

// The resolve hook of use-dist.mjs: <repo>/src/<path>.ts (what tsx resolves
// src/<path>.js to) becomes <repo>/dist/esm/<path>.js.
const SRC = new URL('../../src/', import.meta.url).href;
const DIST = new URL('../../dist/esm/', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  if (!resolved.url.startsWith(SRC)) return resolved;
  const path = resolved.url.slice(SRC.length).replace(/\.ts$/, '.js');
  return { url: DIST + path, format: 'module', shortCircuit: true };
}

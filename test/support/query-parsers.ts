// The query parsers apps read `req.query` / `ctx.query` with, taken from the
// frameworks themselves (not re-implemented): Express 4's default ('extended':
// its own qs), Express 5's 'extended' (qs) and 'simple' (node:querystring),
// Koa 2's and Koa 3's `ctx.query` getters (node:querystring, URLSearchParams).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

type Parse = (query: string) => unknown;

interface ExpressUtils {
  compileQueryParser(setting: string): Parse;
}

/** Koa's `request.query` getter, run on a bare object holding the query string. */
function koaQuery(requestModule: string): Parse {
  const descriptor = Object.getOwnPropertyDescriptor(require(requestModule) as object, 'query');
  const get = descriptor?.get;
  if (get === undefined) throw new Error(`${requestModule} has no query getter`);
  return (query) => get.call({ querystring: query });
}

const express4 = require('express4/lib/utils.js') as ExpressUtils;
const express5 = require('express/lib/utils.js') as ExpressUtils;

export const QUERY_PARSERS: ReadonlyArray<{ readonly name: string; readonly parse: Parse }> = [
  { name: "Express 4 (default 'extended', qs)", parse: express4.compileQueryParser('extended') },
  { name: "Express 5 'extended' (qs)", parse: express5.compileQueryParser('extended') },
  { name: "Express 5 'simple' (node:querystring)", parse: express5.compileQueryParser('simple') },
  { name: 'Koa 2 ctx.query (node:querystring)', parse: koaQuery('koa2/lib/request.js') },
  { name: 'Koa 3 ctx.query (URLSearchParams)', parse: koaQuery('koa/lib/request.js') },
];

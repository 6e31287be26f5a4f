// tiercache mounted app-wide on Koa (`app.use(koaCache(cache))`), TTL from the
// route table, L1 only. Measured on L1 hits.
import Koa from 'koa';
import { createCache } from '../../../src/index.js';
import { koaCache } from '../../../src/koa.js';
import { BENCH_PATH, BODY_OBJECT } from '../body.mjs';
import { handlerRan, serve } from '../serve.js';

const cache = createCache({ redis: false, routes: { '/api': '1m' } });
const app = new Koa();
app.use(koaCache(cache));
app.use((ctx) => {
  if (ctx.path !== BENCH_PATH) return;
  handlerRan();
  ctx.body = BODY_OBJECT;
});
serve('koa-tiercache-app', app.callback(), () => cache.close());

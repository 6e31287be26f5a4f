// Koa baseline: one middleware that sends the prebuilt body bytes.
import Koa from 'koa';
import { BENCH_PATH, BODY, CONTENT_TYPE } from '../body.mjs';
import { handlerRan, serve } from '../serve.js';

const app = new Koa();
app.use((ctx) => {
  if (ctx.path !== BENCH_PATH) return;
  handlerRan();
  ctx.type = CONTENT_TYPE;
  ctx.body = BODY;
});
serve('koa-bare', app.callback());

// Misses through tiercache on Koa (`app.use(koaCache(cache))`), L1 only:
// every never-seen URL runs the handler and is stored (evicting once L1 is full).
import Koa from 'koa';
import { koaCache } from '../../../src/koa.js';
import { koaCatalog, missCache } from '../miss-app.js';
import { serve } from '../serve.js';

const cache = await missCache(false);
const app = new Koa();
app.use(koaCache(cache));
app.use(koaCatalog);
serve('koa-tiercache-l1', app.callback(), () => cache.close());

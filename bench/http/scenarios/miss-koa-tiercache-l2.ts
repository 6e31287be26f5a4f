// Misses through tiercache on Koa with L1 and L2 (Redis from $REDIS_URL):
// every never-seen URL runs the handler and is stored in both tiers.
import Koa from 'koa';
import { koaCache } from '../../../src/koa.js';
import { koaCatalog, missCache, redisUrl } from '../miss-app.js';
import { serve } from '../serve.js';

const cache = await missCache(redisUrl('koa-tiercache-l2'));
const app = new Koa();
app.use(koaCache(cache));
app.use(koaCatalog);
serve('koa-tiercache-l2', app.callback(), () => cache.close());

// Miss baseline for Koa: the same app as the cached Koa miss scenarios, no
// cache. Every request's handler builds its JSON body.
import Koa from 'koa';
import { koaCatalog } from '../miss-app.js';
import { serve } from '../serve.js';

const app = new Koa();
app.use(koaCatalog);
serve('koa-nocache', app.callback());

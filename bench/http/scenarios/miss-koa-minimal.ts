// A floor for what caching a Koa miss costs, not a product (see minimalKoaCache
// in miss-app.ts): no ETag, Date, Age, Cache-Status, storage rules, tags or
// coalescing: every one of those is tiercache's work on top of this (DESIGN.md
// section 6 asks 0.85x of the app without cache).
import Koa from 'koa';
import { koaCatalog, minimalKoaCache } from '../miss-app.js';
import { serve } from '../serve.js';

const app = new Koa();
app.use(minimalKoaCache());
app.use(koaCatalog);
serve('koa-minimal', app.callback());

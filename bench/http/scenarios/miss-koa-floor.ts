// A floor for what the contract asks of a Koa miss, not a product (see
// koaMandatedFloor in miss-app.ts): koa-minimal plus the ETag, Date, Age,
// Cache-Status and storage-rule checks DESIGN.md section 3 requires of every
// stored answer. What koa-tiercache-l1 costs beyond this is tiercache's own.
import Koa from 'koa';
import { koaCatalog, koaMandatedFloor } from '../miss-app.js';
import { serve } from '../serve.js';

const app = new Koa();
app.use(koaMandatedFloor());
app.use(koaCatalog);
serve('koa-floor', app.callback());

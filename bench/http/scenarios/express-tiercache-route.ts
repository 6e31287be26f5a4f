// tiercache mounted on one route (`app.get(path, expressCache(cache, { ttl }), handler)`),
// L1 only, no route table. Measured on L1 hits.
import express from 'express';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { BENCH_PATH, BODY_OBJECT } from '../body.mjs';
import { handlerRan, serve } from '../serve.js';

const cache = createCache({ redis: false });
const app = express();
app.get(BENCH_PATH, expressCache(cache, { ttl: '1m' }), (_req, res) => {
  handlerRan();
  res.json(BODY_OBJECT);
});
serve('express-tiercache-route', app, () => cache.close());

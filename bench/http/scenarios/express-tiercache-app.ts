// tiercache mounted app-wide (`app.use(expressCache(cache))`), TTL from the
// route table, L1 only. Measured on L1 hits: the runner fills and checks
// `Cache-Status: tiercache; hit` before measuring.
import express from 'express';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { BENCH_PATH, BODY_OBJECT } from '../body.mjs';
import { handlerRan, serve } from '../serve.js';

const cache = createCache({ redis: false, routes: { '/api': '1m' } });
const app = express();
app.use(expressCache(cache));
app.get(BENCH_PATH, (_req, res) => {
  handlerRan();
  res.json(BODY_OBJECT);
});
serve('express-tiercache-app', app, () => cache.close());

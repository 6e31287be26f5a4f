// tiercache with L1 off (`l1: false`): every hit is one Redis round trip.
// Redis comes from $REDIS_URL (the runner starts a throwaway redis-server).
import express from 'express';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { BENCH_PATH, BODY_OBJECT } from '../body.mjs';
import { handlerRan, serve } from '../serve.js';

const url = process.env['REDIS_URL'];
if (url === undefined || url === '') throw new Error('express-tiercache-l2: REDIS_URL must be set');
const cache = createCache({ redis: url, l1: false, namespace: 'bench-http', routes: { '/api': '1m' } });
await cache.ready();
const app = express();
app.use(expressCache(cache));
app.get(BENCH_PATH, (_req, res) => {
  handlerRan();
  res.json(BODY_OBJECT);
});
serve('express-tiercache-l2', app, () => cache.close());

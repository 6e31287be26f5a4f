// tiercache's front door (`http.createServer(front(cache, app))`) in front of
// an Express app that also mounts expressCache app-wide (which fills L1).
// Public L1 hits are answered before Express runs; handlerRan() counts every
// request that reaches Express, so the runner proves Express did not run.
import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import { createCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { front } from '../../../src/node.js';
import { BENCH_PATH, BODY_OBJECT } from '../body.mjs';
import { handlerRan, serve } from '../serve.js';

const cache = createCache({ redis: false, routes: { '/api': '1m' } });
const app = express();
app.use(expressCache(cache));
app.get(BENCH_PATH, (_req, res) => {
  res.json(BODY_OBJECT);
});
const intoExpress = (req: IncomingMessage, res: ServerResponse) => {
  handlerRan();
  app(req, res);
};
serve('express-tiercache-front', front(cache, intoExpress), () => cache.close());

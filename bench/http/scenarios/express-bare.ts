// Baseline "bare route" (DESIGN.md section 6): an Express 5 route that sends
// the prebuilt body bytes. Every Express ratio is taken against this.
import express from 'express';
import { BENCH_PATH, BODY, CONTENT_TYPE } from '../body.mjs';
import { handlerRan, serve } from '../serve.js';

const app = express();
app.get(BENCH_PATH, (_req, res) => {
  handlerRan();
  res.set('content-type', CONTENT_TYPE);
  res.end(BODY);
});
serve('express-bare', app);

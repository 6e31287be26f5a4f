// Competitor: apicache with its default memory store on the same route,
// measured on cached answers (the runner checks the apicache-store header).
import express from 'express';
import apicache from 'apicache';
import { BENCH_PATH, BODY_OBJECT } from '../body.mjs';
import { handlerRan, serve } from '../serve.js';

const app = express();
app.get(BENCH_PATH, apicache.middleware('1 minute'), (_req, res) => {
  handlerRan();
  res.json(BODY_OBJECT);
});
serve('express-apicache', app);

// Competitor on misses: apicache 1.6 with its default memory store on the
// route; every never-seen URL runs the handler and is stored.
import express from 'express';
import apicache from 'apicache';
import { BENCH_PATH } from '../body.mjs';
import { expressCatalog } from '../miss-app.js';
import { serve } from '../serve.js';

const app = express();
app.get(BENCH_PATH, apicache.middleware('1 minute'), expressCatalog);
serve('express-apicache', app);

// Miss baseline for Express: the same app as the cached miss scenarios, no
// cache. Every request's handler builds and sends its JSON.
import express from 'express';
import { BENCH_PATH } from '../body.mjs';
import { expressCatalog } from '../miss-app.js';
import { serve } from '../serve.js';

const app = express();
app.get(BENCH_PATH, expressCatalog);
serve('express-nocache', app);

// L2 baseline: an Express route that does one ioredis getBuffer and sends the
// bytes (the body is stored under one key at startup).
import express from 'express';
import { Redis } from 'ioredis';
import { BENCH_PATH, BODY, CONTENT_TYPE } from '../body.mjs';
import { handlerRan, serve } from '../serve.js';

const url = process.env['REDIS_URL'];
if (url === undefined || url === '') throw new Error('express-redis-bare: REDIS_URL must be set');
const KEY = 'bench-http:bare:body';
const redis = new Redis(url);
await redis.set(KEY, BODY);
const app = express();
app.get(BENCH_PATH, (_req, res, next) => {
  handlerRan();
  redis.getBuffer(KEY).then((bytes) => {
    res.set('content-type', CONTENT_TYPE);
    res.end(bytes);
  }, next);
});
serve('express-redis-bare', app, () => redis.quit());

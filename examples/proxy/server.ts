// Example: tiercache as a caching reverse proxy in front of any HTTP origin,
// as an RFC 9111 shared cache (freshness from the origin's own headers).
//   ORIGIN_URL=http://127.0.0.1:9000 PORT=8080 npm run example:proxy
//   ORIGIN_URL=... REDIS_URL=redis://127.0.0.1:6379 npm run example:proxy   (two tiers, shared by every instance)
// Then: curl -i localhost:8080/some/path   (twice: see Age and Cache-Status)
import { createServer } from 'node:http';
import { createCache } from '../../src/index.js';
import { proxyHandler } from './proxy.js';

const originUrl = process.env.ORIGIN_URL;
if (originUrl === undefined || originUrl === '') {
  console.error('ORIGIN_URL is required, e.g. ORIGIN_URL=http://127.0.0.1:9000 PORT=8080 npm run example:proxy');
  process.exit(2);
}

const cache = createCache({
  namespace: process.env.TIERCACHE_NAMESPACE || 'proxy',
  redis: process.env.REDIS_URL || undefined,
  // In origin mode the response decides lifetimes; this caps heuristic ones and how long
  // a stale entry with validators is kept for revalidation.
  ttl: process.env.TIERCACHE_TTL ? undefined : '1h', // createCache reads TIERCACHE_TTL when this is undefined
  freshness: 'origin',
});
cache.on('error', ({ err, where }) => console.warn(`[tiercache] ${where}:`, err.message));

const server = createServer(
  proxyHandler(cache, {
    origin: originUrl,
    timeoutMs: Number(process.env.UPSTREAM_TIMEOUT_MS || 30_000),
    cacheOptions: { cdnCacheControl: process.env.CDN_CACHE_CONTROL === 'true' },
  }),
);
// Malformed requests get 400 from node's parser; a broken socket is only closed.
server.on('clientError', (_err, socket) => {
  if (socket.writable && !socket.destroyed) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  else socket.destroy();
});
process.on('uncaughtException', (err) => console.error('[proxy] unexpected error, still serving:', err));

const port = Number(process.env.PORT ?? 8080);
server.listen(port, process.env.HOST || '127.0.0.1', () => {
  const address = server.address();
  const actual = typeof address === 'object' && address !== null ? address.port : port;
  const tiers = process.env.REDIS_URL ? `L1 + Redis at ${process.env.REDIS_URL}` : 'L1 only';
  console.log(`tiercache proxy example listening on http://127.0.0.1:${actual} -> ${originUrl} (${tiers}; ready ${Math.round(process.uptime() * 1000)} ms after start)`);
});

const shutdown = async () => {
  server.close();
  await cache.close();
  process.exit(0);
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

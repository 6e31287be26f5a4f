// Starts an example app behind tiercache's front door on PORT (default 3000;
// 0 picks a free port) once the cache is ready, prints where, and closes the
// cache on SIGINT/SIGTERM.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { TierCache } from '../../src/index.js';
import { front } from '../../src/node.js';

export function serve(name: string, handler: (req: IncomingMessage, res: ServerResponse) => void, cache: TierCache): void {
  const port = Number(process.env.PORT ?? 3000);
  // The front door answers public L1 hits before the framework runs; everything else reaches the app.
  const server = createServer(front(cache, handler));
  // Listen once Redis (when there is one) is connected, as a readiness probe would wait:
  // ready() never rejects, and resolves at once without Redis.
  void cache.ready().then(() => server.listen(port, '127.0.0.1', () => {
    const address = server.address();
    const actual = typeof address === 'object' && address !== null ? address.port : port;
    const redisUrl = process.env.REDIS_URL || process.env.TIERCACHE_REDIS_URL;
    const tiers = redisUrl ? `L1 + Redis at ${redisUrl}` : 'L1 only (set REDIS_URL or TIERCACHE_REDIS_URL for L1 + Redis)';
    console.log(`tiercache ${name} example listening on http://127.0.0.1:${actual} (${tiers})`);
  }));
  const shutdown = async () => {
    server.close();
    await cache.close();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

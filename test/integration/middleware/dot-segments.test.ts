// A request path with a dot segment is matched as written by Express's and
// Koa's routers, while the route table resolves it: `/api/admin/../movies`
// reached the admin router (behind `'/api/admin': false`) and the table's
// `/api` rule, so the admin's answer was stored and served to anyone who sent
// the same target. Found by a hostile review. Such a request is never cached.
import assert from 'node:assert/strict';
import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import request from 'supertest';
import { createCache, type TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { front } from '../../../src/node.js';
import { bypassStatus } from '../../../src/middleware/cache-status.js';
import { hasDotSegment } from '../../../src/middleware/storage-rules.js';
import { useCleanup } from '../../support/cache-context.js';
import { adapters, buildApp } from './apps.js';

const TARGETS = ['/api/admin/../movies', '/api/admin/%2e%2e/movies', '/api/admin/%2E./movies'];

/** An app with `/api` cached for 5 min and `/api/admin` never: the admin routes want a key header. */
function adminApp(cache: TierCache) {
  const app = express();
  app.use(expressCache(cache));
  const admin = express.Router();
  admin.use((req, res, next) => (req.get('x-admin-key') === 's3cret' ? next() : void res.status(403).json({ error: 'forbidden' })));
  admin.get('/:section/:id', (req, res) => void res.json({ secret: `admin data for ${req.params['section']}/${req.params['id']}` }));
  app.use('/api/admin', admin);
  app.get('/api/movies', (_req, res) => void res.json({ movies: [] }));
  return app;
}

/** GET `target` exactly as written (fetch and URL would resolve its dot segments first). */
function rawGet(port: number, target: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; cacheStatus: string | undefined }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: target, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body, cacheStatus: res.headers['cache-status'] as string | undefined }));
    }).on('error', reject);
  });
}

describe('middleware: request paths with a dot segment', () => {
  const cleanup = useCleanup();

  it('knows a dot segment when it sees one, encoded or not, and only in the path', () => {
    for (const t of ['/a/../b', '/a/./b', '/a/..', '/.', '/a/%2e%2E/b', '/a/%2e/b', '/a/.%2e?x=1']) assert.ok(hasDotSegment(t), t);
    for (const t of ['/a/b', '/a/.b/c', '/a/b./c', '/a/...', '/file.json', '/a?x=/../', '/a/%2f/b', '/a/%2e%2e%2e']) assert.ok(!hasDotSegment(t), t);
  });

  for (const mode of ['middleware', 'front door'] as const) {
    it(`${mode}: an admin's answer under '/api/admin': false is never stored, whatever dot segments the target has`, async () => {
      const cache = cleanup.track(createCache({ namespace: `dot-${mode === 'front door' ? 'f' : 'm'}`, redis: false, routes: { '/api': '5m', '/api/admin': false } }));
      const app = adminApp(cache);
      const server = createServer(mode === 'front door' ? front(cache, app) : app);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const port = (server.address() as AddressInfo).port;
        for (const target of TARGETS) {
          const asAdmin = await rawGet(port, target, { 'x-admin-key': 's3cret' });
          assert.equal(asAdmin.status, 200, `${target}: the admin router did not answer`);
          assert.match(asAdmin.body, /admin data/);
          assert.equal(asAdmin.cacheStatus, bypassStatus('path'), target);
          const anonymous = await rawGet(port, target);
          assert.equal(anonymous.status, 403, `${target}: an anonymous client got ${anonymous.body}`);
        }
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  }

  for (const adapter of adapters) {
    it(`${adapter.name}: a GET of a path with '..' runs the handler every time and says detail=path`, async () => {
      const cache = cleanup.track(createCache({ namespace: `dot-${adapter.name}`, redis: false, routes: { '/api': '5m' } }));
      const app = buildApp(adapter, cache, { appLevel: true, routes: [{ path: '/api/:a/:b/:c', handler: (io) => io.send(`${io.params['a']}|${io.params['b']}|${io.params['c']}`) }] });
      for (let i = 0; i < 2; i++) {
        const res = await request(app.target).get('/api/x/../y');
        assert.equal(res.status, 200);
        assert.equal(res.headers['cache-status'], bypassStatus('path'));
      }
      assert.equal(app.runs('/api/:a/:b/:c'), 2);
    });
  }
});

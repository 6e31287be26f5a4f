// Must not compile: each line after `// @expect-error TSnnnn` fails with that
// code, and nothing else fails (checked by test/package/pack.test.ts against the
// packed tarball). Internals are not in the published types; durations and
// jitter are checked as the ms format; events by name.
import express from 'express';
import { createCache } from 'tiercache';
import { expressCache } from 'tiercache/express';
import { koaCache } from 'tiercache/koa';
import { prometheusCollector } from 'tiercache/prometheus';
import { statusPage } from 'tiercache/status';

const cache = createCache({ redis: false });

// @expect-error TS2339
cache.fills = -1;
// @expect-error TS2339
cache.store.l1;
// @expect-error TS2339
cache.bus;
// @expect-error TS2339
cache.fillLock;
// @expect-error TS2339
cache.reportError(new Error('x'), 'x');
// @expect-error TS2339
cache.trackFill(Promise.resolve());
// @expect-error TS2339
cache.options.routes;
// @expect-error TS2339
void cache.coalesced;

// @expect-error TS2322
createCache({ ttl: '5 minutez' });
// @expect-error TS2322
createCache({ l1: { ttl: 'soon' } });
// @expect-error TS2322
createCache({ jitter: '10' });
// @expect-error TS2322
createCache({ serializer: 'yaml' });

// @expect-error TS2345
cache.on('hti', () => undefined);
// @expect-error TS2339
cache.on('hit', (e) => e.teir);
// @expect-error TS2339
cache.on('miss', (e) => e.tier);
// @expect-error TS2339
cache.on('error', (e) => e.message);
// @expect-error TS2367
cache.on('invalidate', (e) => e.kind === 'users');
// @expect-error TS2367
cache.on('l2', (e) => e.state === 'reconnecting');
// @expect-error TS2345
cache.on('l3', () => undefined);
// @expect-error TS2339
void cache.stats().l2.breakerOpen;
// @expect-error TS2561
prometheusCollector(cache, { prefx: 'x_' });
// @expect-error TS2561
statusPage(cache, { showkeys: true });

// @expect-error TS2345
void cache.invalidateUser({ id: 42 });

const app = express();
// @expect-error TS2339
app.use(expressCache(cache, { user: (req) => req.notAField }));
// @expect-error TS2322
app.use(expressCache(cache, { ttl: '5 minutez' }));
// @expect-error TS2322
koaCache(cache, { user: (ctx) => ({ id: ctx.params.id }) });
// @expect-error TS2322
koaCache(cache, { bypass: () => 'yes' });

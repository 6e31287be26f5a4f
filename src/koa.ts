// 'tiercache/koa': Koa 2/3 middleware.
export { koaCache, type KoaCacheOptions, type KoaContext } from './middleware/koa.js';
export type { MiddlewareOptions } from './middleware/options.js';

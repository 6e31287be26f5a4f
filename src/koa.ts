// 'tiercache/koa': Koa 2/3 middleware.
export { koaCache, type KoaCacheMiddleware, type KoaCacheOptions, type KoaContext, type KoaRouterParams } from './middleware/koa.js';
export type { MiddlewareOptions } from './middleware/options.js';

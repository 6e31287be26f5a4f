// 'tiercache/express': Express 4/5 middleware.
export { expressCache, type ExpressCacheMiddleware, type ExpressCacheOptions, type ExpressRequest, type ExpressNext } from './middleware/express.js';
export type { MiddlewareOptions } from './middleware/options.js';

// The slices of the untyped competitor packages the HTTP scenarios use.
declare module 'apicache' {
  import type { RequestHandler } from 'express';
  const apicache: { middleware(duration?: string | number): RequestHandler };
  export default apicache;
}

declare module 'koa-cash' {
  import type { Middleware } from 'koa';
  interface KoaCashOptions {
    setCachedHeader?: boolean;
    get(key: string, maxAge: number): unknown;
    set(key: string, value: object, maxAge: number): unknown;
  }
  export default function koaCash(options: KoaCashOptions): Middleware;
}

declare module 'route-cache' {
  import type { RequestHandler } from 'express';
  interface RouteCacheStore {
    get(key: string): Promise<unknown>;
    set(key: string, value: object, ttlMillis: number): Promise<unknown>;
    del(key: string): Promise<unknown>;
    clear(): Promise<unknown>;
  }
  const routeCache: {
    cacheSeconds(seconds: number, key?: string | ((req: unknown, res: unknown) => string | false)): RequestHandler;
    config(options: { max?: number; cacheStore?: RouteCacheStore }): unknown;
  };
  export default routeCache;
}

declare module 'route-cache/ioRedisStore.js' {
  import type { Redis } from 'ioredis';
  export default class IoRedisStore {
    constructor(client: Redis);
    get(key: string): Promise<unknown>;
    set(key: string, value: object, ttlMillis: number): Promise<unknown>;
    del(key: string): Promise<unknown>;
    clear(): Promise<unknown>;
  }
}

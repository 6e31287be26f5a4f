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

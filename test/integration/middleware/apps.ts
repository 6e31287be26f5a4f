// Test fixtures: one route description, four real apps (Express 5, Express 4,
// Koa 3, Koa 2). Each adapter builds its app the framework's own way
// (app.get / router.get, res.send / ctx.body = ...) around a small neutral
// handler interface, and counts how often each handler ran, so one test body
// checks the same behaviour against every framework major.
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import express from 'express';
import Koa from 'koa';
import Router, { type RouterMiddleware } from '@koa/router';
import type { TierCache } from '../../../src/index.js';
import { expressCache } from '../../../src/express.js';
import { koaCache } from '../../../src/koa.js';
import type { MiddlewareOptions } from '../../../src/middleware/options.js';

const require = createRequire(import.meta.url);
// npm aliases of the older majors ("express4": "npm:express@4", "koa2": "npm:koa@2"); same API, no own types.
// Exported for the middleware tests that build their own apps in every major.
export const express4 = require('express4') as typeof express;
export const Koa2 = require('koa2') as typeof Koa;

/** Options as both adapters take them; the functions receive Express `req` or Koa `ctx`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyMiddlewareOptions = MiddlewareOptions<any>;

/** What a handler sees and does, whatever the framework. */
export interface HandlerIO {
  /** Express `req` or Koa `ctx`: what the middleware's option functions get, and what cache.keyFor() takes. */
  readonly arg: object;
  readonly method: string;
  /** The full request target (path and query), not mount-relative. */
  readonly url: string;
  /** Route parameters (`:id`). */
  readonly params: Readonly<Record<string, string>>;
  /** A request header (lower-case name), repeated values joined. */
  header(name: string): string | undefined;
  /** A query parameter: a string, an array when repeated, undefined when absent. */
  query(name: string): string | string[] | undefined;
  status(code: number): void;
  /** Sets a response header (res.set / ctx.set). */
  set(name: string, value: string | string[]): void;
  /** The framework's own body sending: Express res.send(body), Koa ctx.body = body. */
  send(body: string | Buffer): void;
  /** Express res.json(value), Koa ctx.body = value. */
  json(value: unknown): void;
  /** A stream body: Express pipes it into res, Koa sets ctx.body = stream. */
  stream(source: Iterable<Buffer | string> | AsyncIterable<Buffer | string>): void;
  /** Raw node writes on res (Koa: with ctx.respond = false), encodings passed through. */
  write(chunk: string | Buffer, encoding?: BufferEncoding): void;
  end(chunk?: string | Buffer, encoding?: BufferEncoding): void;
  /** The framework objects, for framework-specific tests (sendFile, writeHead). */
  readonly native: NativeIO;
}

export type NativeIO =
  | { readonly framework: 'express'; readonly req: express.Request; readonly res: express.Response }
  | { readonly framework: 'koa'; readonly ctx: Koa.Context };

export type Handler = (io: HandlerIO) => void | Promise<void>;

export interface RouteSpec {
  /** Full path pattern, e.g. '/api/movies/:id' (under `mount` when the app has one). */
  readonly path: string;
  /** @default 'get' (Express and @koa/router also answer HEAD with it) */
  readonly method?: 'get' | 'post';
  /** Mount the cache on this route alone, with these options. */
  readonly mw?: AnyMiddlewareOptions;
  readonly handler: Handler;
}

export interface AppSpec {
  /** Mount the cache app-wide (before the routes), with these options; true = no options. */
  readonly appLevel?: AnyMiddlewareOptions | true;
  /**
   * With appLevel: mount the cache under this path only. Express:
   * `app.use(mount, expressCache(cache))`; Koa: a @koa/router with this
   * prefix whose `use()` runs the cache before the routes under it.
   */
  readonly mount?: string;
  readonly routes: readonly RouteSpec[];
}

export interface TestApp {
  /** What supertest takes: the Express app or Koa's app.callback(). */
  readonly target: (req: IncomingMessage, res: ServerResponse) => void;
  /** How many times the handler of `path` (as given in the spec) ran for `method`. */
  runs(path: string, method?: 'get' | 'post'): number;
}

export type AdapterName = 'express5' | 'express4' | 'koa3' | 'koa2';

export interface Adapter {
  readonly name: AdapterName;
  readonly framework: 'express' | 'koa';
  /** expressCache / koaCache, as an app would call it. */
  middleware(cache: TierCache, options?: AnyMiddlewareOptions): unknown;
  build(cache: TierCache, spec: AppSpec): TestApp;
}

/** A request header from Express `req` or Koa `ctx` (both have `.headers`), for option functions. */
export function headerOf(arg: unknown, name: string): string | undefined {
  const value = (arg as { headers: IncomingMessage['headers'] }).headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Route parameters from Express `req.params` or Koa `ctx.params`, for option functions. */
export function paramsOf(arg: unknown): Record<string, string> {
  return (arg as { params?: Record<string, string> }).params ?? {};
}

function queryOf(url: string, name: string): string | string[] | undefined {
  const q = url.indexOf('?');
  const values = new URLSearchParams(q === -1 ? '' : url.slice(q + 1)).getAll(name);
  return values.length === 0 ? undefined : values.length === 1 ? values[0] : values;
}

class RunCounter {
  private readonly counts = new Map<string, number>();
  hit(method: string, path: string): void {
    const k = `${method} ${path}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }
  get(method: string, path: string): number {
    return this.counts.get(`${method} ${path}`) ?? 0;
  }
}

function expressIO(req: express.Request, res: express.Response): HandlerIO {
  return {
    arg: req,
    method: req.method,
    url: req.originalUrl,
    params: req.params as Record<string, string>,
    header: (name) => headerOf(req, name),
    query: (name) => queryOf(req.originalUrl, name),
    status: (code) => void res.status(code),
    set: (name, value) => void res.set(name, value),
    send: (body) => void res.send(body),
    json: (value) => void res.json(value),
    stream: (source) => void Readable.from(source).pipe(res),
    write: (chunk, encoding) => void (encoding === undefined ? res.write(chunk) : res.write(chunk, encoding)),
    end: (chunk, encoding) => void (chunk === undefined ? res.end() : encoding === undefined ? res.end(chunk) : res.end(chunk, encoding)),
    native: { framework: 'express', req, res },
  };
}

function koaIO(ctx: Koa.Context): HandlerIO {
  let statusSet = false;
  const raw = (): ServerResponse => {
    ctx.respond = false;
    // Koa starts every response as 404 until a body or status is set.
    if (!statusSet && !ctx.res.headersSent) ctx.status = 200;
    return ctx.res;
  };
  return {
    arg: ctx,
    method: ctx.method,
    url: ctx.originalUrl,
    params: (ctx as unknown as { params?: Record<string, string> }).params ?? {},
    header: (name) => headerOf(ctx, name),
    query: (name) => queryOf(ctx.originalUrl, name),
    status: (code) => {
      statusSet = true;
      ctx.status = code;
    },
    set: (name, value) => ctx.set(name, value),
    send: (body) => {
      ctx.body = body;
    },
    json: (value) => {
      ctx.body = value;
    },
    stream: (source) => {
      ctx.body = Readable.from(source);
    },
    write: (chunk, encoding) => void (encoding === undefined ? raw().write(chunk) : raw().write(chunk, encoding)),
    end: (chunk, encoding) => {
      const res = raw();
      if (chunk === undefined) res.end();
      else if (encoding === undefined) res.end(chunk);
      else res.end(chunk, encoding);
    },
    native: { framework: 'koa', ctx },
  };
}

function expressAdapter(name: 'express5' | 'express4', factory: typeof express): Adapter {
  return {
    name,
    framework: 'express',
    middleware: (cache, options) => expressCache(cache, options),
    build(cache, spec) {
      const app = factory();
      const counter = new RunCounter();
      if (spec.appLevel !== undefined) {
        const mw = expressCache(cache, spec.appLevel === true ? undefined : spec.appLevel);
        if (spec.mount !== undefined) app.use(spec.mount, mw);
        else app.use(mw);
      }
      for (const route of spec.routes) {
        const method = route.method ?? 'get';
        const handler = (req: express.Request, res: express.Response, next: express.NextFunction) => {
          counter.hit(method, route.path);
          Promise.resolve()
            .then(() => route.handler(expressIO(req, res)))
            .catch(next);
        };
        if (route.mw !== undefined) app[method](route.path, expressCache(cache, route.mw), handler);
        else app[method](route.path, handler);
      }
      // Errors answer 500 as Express's own handler does, without printing every one.
      app.use((_err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => void res.status(500).send('Internal Server Error'));
      return { target: app, runs: (path, method = 'get') => counter.get(method, path) };
    },
  };
}

function koaAdapter(name: 'koa3' | 'koa2', Factory: typeof Koa): Adapter {
  return {
    name,
    framework: 'koa',
    middleware: (cache, options) => koaCache(cache, options),
    build(cache, spec) {
      const app = new Factory();
      app.silent = true; // handler errors answer 500 without being printed
      const counter = new RunCounter();
      const root = new Router();
      const mounted = spec.mount === undefined ? undefined : new Router({ prefix: spec.mount });
      if (spec.appLevel !== undefined) {
        const mw = koaCache(cache, spec.appLevel === true ? undefined : spec.appLevel);
        if (mounted !== undefined) mounted.use(mw as RouterMiddleware);
        else app.use(mw as Koa.Middleware);
      }
      for (const route of spec.routes) {
        const method = route.method ?? 'get';
        const handler = async (ctx: Koa.Context) => {
          counter.hit(method, route.path);
          await route.handler(koaIO(ctx));
        };
        const under = mounted !== undefined && spec.mount !== undefined && route.path.startsWith(spec.mount + '/');
        const router = under ? mounted! : root;
        const path = under ? route.path.slice(spec.mount!.length) : route.path;
        if (route.mw !== undefined) router[method](path, koaCache(cache, route.mw) as RouterMiddleware, handler as RouterMiddleware);
        else router[method](path, handler as RouterMiddleware);
      }
      if (mounted !== undefined) app.use(mounted.routes() as Koa.Middleware);
      app.use(root.routes() as Koa.Middleware);
      return { target: app.callback(), runs: (path, method = 'get') => counter.get(method, path) };
    },
  };
}

export const adapters: readonly Adapter[] = [
  expressAdapter('express5', express),
  expressAdapter('express4', express4),
  koaAdapter('koa3', Koa),
  koaAdapter('koa2', Koa2),
];

/** Builds `spec` as an app of `adapter`'s framework around `cache`. */
export function buildApp(adapter: Adapter, cache: TierCache, spec: AppSpec): TestApp {
  return adapter.build(cache, spec);
}

// What the README's TypeScript blocks take from the app around them (an
// Express app, a Koa app, a cache, a database, a user): declared here so each
// block compiles as it is written (test/package/pack.test.ts checks them).
import type { Express, Request, RequestHandler } from 'express';
import type Koa from 'koa';
import type { TierCache } from 'tiercache';

declare global {
  interface User {
    id: string;
    name: string;
  }
  interface Token {
    value: string;
    scope: string;
    expiresInMs: number;
  }
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      user?: User;
    }
  }
  const app: Express;
  const koaApp: Koa;
  const cache: TierCache;
  const req: Request;
  const me: RequestHandler;
  const requireAdmin: RequestHandler;
  const movie: RequestHandler;
  const user: User;
  const sessionId: string;
  const db: {
    load(id: number): Promise<User>;
    save(id: number, user: User): Promise<void>;
    updateUser(id: string, changes: unknown): Promise<User>;
    fetchToken(): Promise<Token>;
  };
  const metrics: { increment(name: string): void };
  const logger: { warn(obj: object, msg?: string): void };
}

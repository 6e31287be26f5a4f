// A writeHead hook, as on-headers installs one: it runs after the cache has
// looked at the head and before node sends it, the last moment a middleware
// mounted in front can change the answer's fields.
import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';

type AnyResponse = ServerResponse | Http2ServerResponse;

/** Runs `change` on `res` each time its head is written, before the original writeHead. */
export function onWriteHead<R extends AnyResponse>(res: R, change: (res: R) => void): void {
  const original = res.writeHead as (...a: unknown[]) => R;
  res.writeHead = function (this: R, ...args: unknown[]) {
    change(this);
    return original.apply(this, args);
  } as R['writeHead'];
}

/** Sets `name: value` as the head is written (see onWriteHead). */
export function setAsHeadGoesOut(res: AnyResponse, name: string, value: string): void {
  onWriteHead(res, (r) => r.setHeader(name, value));
}

// statusPage(cache): a (req, res) handler the app mounts behind its own auth.
// It answers with the page (status-html.ts) or, for `?feed`, with the JSON
// the page polls every second: stats(), health(), the per-second series, the
// per-route table and the last invalidations. User ids and keys are left out
// unless `showKeys: true`: the page is for operators, not for reading data.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TierCache } from '../cache/tier-cache.js';
import { TierCacheConfigError } from '../errors.js';
import type { CacheStats } from './stats.js';
import { STATUS_HTML } from './status-html.js';
import { StatusRecorder, type InvalidationRow, type RouteRow, type Series } from './status-recorder.js';

export interface StatusPageOptions {
  /** Show user ids (`user:<id>` tags) and keys in the invalidation list. @default false */
  showKeys?: boolean | undefined;
}

/** What `?feed` answers. */
export interface StatusFeed {
  readonly now: number;
  readonly showKeys: boolean;
  readonly stats: CacheStats;
  readonly series: Series;
  readonly routes: RouteRow[];
  readonly invalidations: InvalidationRow[];
}

/** A request handler for the status page, and how to stop it listening to the cache. */
export interface StatusPageHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** Stops recording (the cache's listeners are removed); the page then shows stats() only. */
  stop(): void;
}

/** The page's Content-Security-Policy: nothing but its own inline code and its feed, so it works offline and loads nothing from elsewhere. */
export const STATUS_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HIDDEN = '…';
const HTML_BYTES = Buffer.from(STATUS_HTML, 'utf8');

function masked(row: InvalidationRow): InvalidationRow {
  const tags = row.tags.map((t) => (t.startsWith('user:') ? `user:${HIDDEN}` : t.startsWith('key:') ? `key:${HIDDEN}` : t));
  const { key: _key, ...rest } = row;
  return row.key === undefined ? { ...rest, tags } : { ...rest, tags, key: HIDDEN };
}

/** Whether the request asks for the feed: a `feed` query parameter. */
function wantsFeed(url: string | undefined): boolean {
  const q = url === undefined ? -1 : url.indexOf('?');
  return q !== -1 && new URLSearchParams(url!.slice(q + 1)).has('feed');
}

/**
 * The live status page of a cache: one self-contained HTML page and its JSON
 * feed (`?feed`), for the app to mount behind its own auth.
 * @example app.use('/_tiercache', requireAdmin, statusPage(cache));
 * @throws TierCacheConfigError for an unknown option or a showKeys that is not a boolean.
 */
export function statusPage(cache: TierCache, options?: StatusPageOptions): StatusPageHandler {
  if (cache === null || typeof cache !== 'object' || typeof (cache as TierCache).stats !== 'function' || typeof (cache as TierCache).on !== 'function') {
    throw new TierCacheConfigError('statusPage(cache)', cache, 'must be a cache made by createCache()');
  }
  const o = options ?? {};
  if (typeof o !== 'object' || o === null) throw new TierCacheConfigError('statusPage options', o, 'must be an object');
  for (const key of Object.keys(o)) if (key !== 'showKeys') throw new TierCacheConfigError(key, (o as Record<string, unknown>)[key], 'is not a known option (known: showKeys)');
  if (o.showKeys !== undefined && typeof o.showKeys !== 'boolean') throw new TierCacheConfigError('showKeys', o.showKeys, 'must be a boolean');
  const showKeys = o.showKeys === true;
  const recorder = new StatusRecorder(cache);

  const feed = (): StatusFeed => {
    const invalidations = recorder.recentInvalidations();
    return {
      now: Date.now(),
      showKeys,
      stats: cache.stats(),
      series: recorder.series(),
      routes: recorder.routeRows(),
      invalidations: showKeys ? invalidations : invalidations.map(masked),
    };
  };

  const handler = function tiercacheStatus(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end('GET only\n');
      return;
    }
    const common = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };
    if (wantsFeed(req.url)) {
      const body = Buffer.from(JSON.stringify(feed()), 'utf8');
      res.writeHead(200, { ...common, 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    res.writeHead(200, { ...common, 'content-type': 'text/html; charset=utf-8', 'content-length': HTML_BYTES.length, 'content-security-policy': STATUS_CSP });
    res.end(req.method === 'HEAD' ? undefined : HTML_BYTES);
  } as StatusPageHandler;
  handler.stop = () => recorder.stop();
  return handler;
}

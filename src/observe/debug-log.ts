// Debug lines for the cache's decisions (hit, miss, store, bypass,
// invalidate), written only when the logger says, when the cache is made,
// that it writes debug lines: otherwise nothing listens, and the hit path
// builds no event and formats nothing.
import type { Logger } from '../cache/options.js';
import type { TierCacheEvents } from './events.js';

type Emitter = { on<E extends keyof TierCacheEvents>(event: E, listener: (payload: TierCacheEvents[E]) => void): unknown };

/** Whether a pino-compatible logger writes debug lines (pino's isLevelEnabled, else its `level`). */
export function debugEnabled(logger: Logger): boolean {
  const l = logger as Logger & { isLevelEnabled?: (level: string) => boolean; level?: unknown; levelVal?: unknown };
  if (typeof l.isLevelEnabled === 'function') return l.isLevelEnabled('debug') === true;
  if (typeof l.level === 'string') return l.level === 'debug' || l.level === 'trace';
  return false;
}

const DECISIONS = ['hit', 'miss', 'store', 'bypass', 'invalidate'] as const satisfies ReadonlyArray<keyof TierCacheEvents>;

/** Logs each decision at debug level when the logger allows it; does nothing otherwise. */
export function attachDebugLog(cache: Emitter, logger: Logger): void {
  if (!debugEnabled(logger)) return;
  for (const event of DECISIONS) {
    cache.on(event, (payload) => {
      // A logger that throws must not fail the request or call that made the decision.
      try {
        logger.debug({ event, ...payload }, `tiercache: ${event}`);
      } catch {
        // nothing to report it to: the logger is what failed
      }
    });
  }
}

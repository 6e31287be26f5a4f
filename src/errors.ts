// Errors thrown by tiercache. Each class carries a stable `code` so callers can
// branch without parsing messages; the original failure is kept as `cause`.

/** Base class of every error tiercache throws or emits. */
export class TierCacheError extends Error {
  static readonly code: string = 'TIERCACHE_ERROR';
  readonly code: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = (new.target as typeof TierCacheError).code;
  }
}

/** An option or environment variable has a value tiercache cannot use. */
export class TierCacheConfigError extends TierCacheError {
  static override readonly code: string = 'TIERCACHE_CONFIG';
  /** The option path (`l1.maxBytes`) or environment variable that was rejected. */
  readonly option: string;

  constructor(option: string, value: unknown, expected: string) {
    super(`tiercache: option ${option} ${expected}; got ${describeValue(value)}`);
    this.option = option;
  }
}

/**
 * An invalidation was applied on this instance but Redis could not take it
 * yet: it is queued and replayed when Redis answers again. Emitted as
 * 'error'; thrown only by calls made with `{ strict: true }`.
 */
export class TierCacheInvalidationError extends TierCacheError {
  static override readonly code: string = 'TIERCACHE_INVALIDATION_NOT_BROADCAST';
}

/** The cache was closed: close() was called before this call. */
export class TierCacheClosedError extends TierCacheError {
  static override readonly code: string = 'TIERCACHE_CLOSED';
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return 'an array';
  const name = (value as object).constructor?.name;
  try {
    const json = JSON.stringify(value);
    if (json !== undefined && json.length <= 80) return json;
  } catch {
    // fall through to the constructor name
  }
  return name ? `a ${name}` : 'an object';
}

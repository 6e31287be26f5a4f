// What the tiers hold. An entry is a body plus the facts needed to decide,
// without asking Redis, whether it may still be served: its lifetimes, the
// namespace epoch and the tag versions current when its fill began.

/** What kind of value an entry holds; the layer above decides what `head` means. */
export const EntryKind = {
  /** Data API value stored as JSON text in `body`. */
  Json: 1,
  /** Data API value stored as raw bytes in `body`. */
  Bytes: 2,
  /** HTTP response: `head` holds status and headers (encoded by the middleware), `body` the bytes sent. */
  Http: 3,
} as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

export interface StoredEntry {
  readonly kind: EntryKind;
  /** When the fill began (ms since the epoch); `Age` counts from here. */
  readonly createdAt: number;
  /** Fresh until this time (ms since the epoch). */
  readonly freshUntil: number;
  /** May be served stale (stale-while-revalidate / stale-if-error) until this time; >= freshUntil. */
  readonly staleUntil: number;
  /** Namespace epoch current when the fill began; clear() moves the epoch. */
  readonly epoch: number;
  /** The entry's tags, implicit and explicit. */
  readonly tags: readonly string[];
  /** Version of each tag (same index) when the fill began. */
  readonly versions: readonly number[];
  /** Opaque metadata of the layer above (HTTP status and headers); empty for data values. */
  readonly head: Buffer;
  /** The payload bytes. For L1 JSON entries this may be empty: `value` holds the parsed value. */
  readonly body: Buffer;
  /** A decoded form the layer above keeps with an L1 entry (parsed JSON, prebuilt response). */
  decoded?: unknown;
  /**
   * What `decoded` will hold once built, when the layer above knows it at
   * store time but builds it later (an HTTP response, on its first hit, without
   * telling L1): L1 charges it from the start.
   */
  readonly decodedBytes?: number;
}

/** Tag versions and epoch read when a fill began; recorded in the entry it produces. */
export interface FillStamp {
  readonly epoch: number;
  readonly tags: readonly string[];
  readonly versions: readonly number[];
  /**
   * Local only (never stored): how many times this instance had forgotten its
   * versions when the stamp was taken. A stamp from before a reset is never
   * stored: the invalidation that caused the reset may not be in Redis.
   */
  readonly generation?: number;
}

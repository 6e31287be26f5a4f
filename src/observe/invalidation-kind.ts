// Names what an invalidation was from what it carries, so that local calls
// and messages from other instances (which carry only tags, keys or an epoch)
// are reported alike in events and metrics.
import type { BusMessage } from '../store/invalidation-bus.js';
import type { InvalidateEvent, InvalidationKind } from './events.js';

const EMPTY: readonly string[] = Object.freeze([]);

/** 'user', 'key' or 'prefix' when every tag is of that implicit kind; 'tags' otherwise. */
export function invalidationKind(tags: readonly string[]): InvalidationKind {
  if (tags.length === 0) return 'tags';
  if (tags.every((t) => t.startsWith('user:'))) return 'user';
  if (tags.every((t) => t.startsWith('key:'))) return 'key';
  if (tags.every((t) => t.startsWith('path:') || t.startsWith('at:'))) return 'prefix';
  return 'tags';
}

/** A local invalidation's event. */
export function localInvalidation(tags: readonly string[], delivered: boolean, extra?: { key?: string; clear?: boolean; namespace?: string | undefined }): InvalidateEvent {
  const kind: InvalidationKind = extra?.clear === true ? 'clear' : extra?.key !== undefined ? 'key' : invalidationKind(tags);
  const event: { -readonly [K in keyof InvalidateEvent]: InvalidateEvent[K] } = { kind, tags, remote: false, delivered };
  if (extra?.key !== undefined) event.key = extra.key;
  if (extra?.clear === true) event.clear = true;
  if (extra?.namespace !== undefined) event.namespace = extra.namespace;
  return event;
}

/** The event of a message another instance sent. */
export function remoteInvalidation(message: BusMessage): InvalidateEvent {
  if (message.epoch !== undefined) return { kind: 'clear', tags: EMPTY, clear: true, remote: true, delivered: true };
  const tags = message.tags === undefined ? EMPTY : message.tags.map(([t]) => t);
  if (message.keys !== undefined && message.keys.length > 0) return { kind: 'key', tags, key: message.keys[0]!, remote: true, delivered: true };
  return { kind: invalidationKind(tags), tags, remote: true, delivered: true };
}

// Whether a value is a promise-like: what a handler's next() or a custom
// serializer may return. Read once, by its `then`, as the Promises/A+ spec
// reads one (a primitive has no callable `then`).
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function';
}

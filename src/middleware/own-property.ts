// A property of the cache's own, for a while, on an object node or the
// framework owns (a response's headersSent or destroy, a socket's destroy, an
// HTTP/2 stream's push), and then exactly what was there before: the object's
// own property as it was, or none, so that its prototype's shows again.

/** Defines `name` on `target` as `descriptor` says; the function returned puts back what was there. */
export function shadowOwn(target: object, name: string, descriptor: PropertyDescriptor): () => void {
  const own = Object.getOwnPropertyDescriptor(target, name);
  Object.defineProperty(target, name, descriptor);
  return () => {
    if (own === undefined) delete (target as Record<string, unknown>)[name];
    else Object.defineProperty(target, name, own);
  };
}

/** The descriptor an assignment (`obj.name = fn`) gives a new own property. */
export function assigned(value: unknown): PropertyDescriptor {
  return { value, writable: true, enumerable: true, configurable: true };
}

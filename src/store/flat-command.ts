// Scripts sent without ioredis flattening their arguments, on the clients
// tiercache opens.
//
// Why: ioredis 6 builds every Command's argument list with Array#flat, which
// V8 (node 20) runs through its generic path, one property lookup and one
// property definition per element: about 150 ns an argument, 2-4 µs for a
// fill's lookup or store script (against ~0.1 µs for the same list filled by
// index), twice per L2 miss. LuaScript.raw hands evalshaBuffer one array of
// keys and arguments (never spread); on a client tiercache opens, that call
// builds the Command from an argument list whose flat() answers the list
// itself. ioredis sees a true array, so any version takes it as it takes the
// flattened one, and the Command is otherwise the one its own evalshaBuffer
// builds. A caller's client is left as it is (its methods are not ours to
// replace): its scripts go through ioredis's own evalshaBuffer.
import { Command, type Redis } from 'ioredis';

/** An argument list with no list inside: flat() has nothing to do (ioredis calls it on every command). */
export class FlatArgs extends Array<string | Buffer> {
  override flat<A, D extends number = 1>(this: A): FlatArray<A, D>[] {
    return this as unknown as FlatArray<A, D>[];
  }
}

type EvalshaBuffer = (sha: string, numkeys: number, keysAndArgs: ReadonlyArray<string | Buffer>) => Promise<unknown>;

/**
 * Makes `client`'s evalshaBuffer(sha, numkeys, keysAndArgs), the form
 * LuaScript.raw calls, send its Command without Array#flat. Any other form
 * goes to ioredis's own method.
 */
export function sendScriptsFlat(client: Redis): void {
  const own = client as unknown as { evalshaBuffer: EvalshaBuffer };
  const ioredis = own.evalshaBuffer;
  own.evalshaBuffer = function (this: Redis, sha: string, numkeys: number, keysAndArgs: ReadonlyArray<string | Buffer>): Promise<unknown> {
    // Auto-pipelining as ioredis judges it, on for any truthy value (a URL's query gives the string 'true'): its queue
    // holds commands back to the next tick, and a script sent past it would overtake commands called before it.
    if (arguments.length !== 3 || !Array.isArray(keysAndArgs) || this.options.enableAutoPipelining) return ioredis.apply(this, arguments as unknown as Parameters<EvalshaBuffer>);
    // Sized, then filled by index: push() on an Array subclass leaves V8's fast path (a C++ call per element).
    const list = new FlatArgs(2 + keysAndArgs.length);
    list[0] = sha;
    list[1] = String(numkeys);
    for (let i = 0; i < keysAndArgs.length; i++) list[i + 2] = keysAndArgs[i]!;
    const options = this.options;
    const command = new Command('evalsha', list, { replyEncoding: null, keyPrefix: options.keyPrefix, errorStack: options.showFriendlyErrorStack ? new Error() : undefined });
    this.sendCommand(command);
    return command.promise;
  };
}

// Redis Cluster failures that mean "L2 is unavailable" rather than "this one
// command failed": L2Store opens its breaker on them, as on a timeout, so a
// request pays for them once per breaker cooldown instead of on every call.
// Told apart by ioredis's error messages (6.x), read here only.
import type { Cluster, Redis } from 'ioredis';

const BUDGET_SPENT = 'Too many Cluster redirections. Last error: ';
const MOVED_LAST = /^ReplyError: MOVED \d+ (\S+)$/;
const REDIRECTED_LAST = /^ReplyError: (?:MOVED|ASK|TRYAGAIN) /;
const SLOT_NOT_SERVED = 'CLUSTERDOWN Hash slot not served';

/**
 * A command whose node stayed unreachable until the client's redirection
 * budget ran out (a dead master before its replica takes over, or one this
 * instance is cut off from while the others reach it). ioredis answers a
 * closed connection by trying a random node, which answers MOVED back to
 * the unreachable one, so the last error is either: "Connection is closed."
 * or a MOVED to a node whose connection the client lost and has not had
 * ready since (`lost`). A MOVED to a node it simply never tried is not
 * this: a budget spent on slots moving between nodes that answer (a
 * resharding; a master just added to scale out, which a client has no
 * connection to until a command goes there) stays a failure of that command alone.
 */
export function nodeGone(error: Error, lost: LostNodes | undefined): boolean {
  const message = error.message;
  if (!message.startsWith(BUDGET_SPENT)) return false;
  const last = message.slice(BUDGET_SPENT.length);
  if (last === 'Error: Connection is closed.') return true;
  const target = MOVED_LAST.exec(last)?.[1];
  return target !== undefined && lost !== undefined && lost.has(target);
}

/**
 * A budget spent on a MOVED the client never followed: ioredis updates its
 * slot map only when it follows one, so a client with little or no budget
 * (maxRedirections 0) would send the slot's next commands to its old owner
 * again, each one failing, until its next periodic slot refresh.
 */
export function movedUnfollowed(error: Error): boolean {
  const message = error.message;
  return message.startsWith(BUDGET_SPENT) && MOVED_LAST.test(message.slice(BUDGET_SPENT.length));
}

/**
 * A budget spent on redirections (the last one MOVED, ASK or TRYAGAIN): a
 * slot moving between masters, so the command did not run, and the same
 * command sent again once the move allows it goes through. A MOVED-last may
 * also be a node gone (see nodeGone); L2Store takes L2 down on that, which a
 * caller tells by L2's state.
 */
export function redirectionSpent(error: Error): boolean {
  const message = error.message;
  return message.startsWith(BUDGET_SPENT) && REDIRECTED_LAST.test(message.slice(BUDGET_SPENT.length));
}

/**
 * A Cluster that serves none of the command's slot (CLUSTERDOWN: a master down
 * with no replica to take over, with cluster-require-full-coverage for every
 * slot): as good as down until it is whole again. Given back at once by a
 * client made with retryDelayOnClusterDown 0, or after the redirection budget
 * of retries, each well under a command timeout apart.
 */
export function clusterDown(error: Error): boolean {
  const message = error.message;
  return message.startsWith('CLUSTERDOWN') || message.startsWith(`${BUDGET_SPENT}ReplyError: CLUSTERDOWN`);
}

/**
 * A command that failed on its own slot while the Cluster may serve the
 * others: the redirection budget spent on it (its master gone, or a move
 * that outlasted it), or CLUSTERDOWN for that slot alone (a slot no master
 * serves, with cluster-require-full-coverage no). Not a Cluster that says it
 * is down as a whole.
 */
export function slotUnserved(error: Error): boolean {
  const message = error.message;
  const last = message.startsWith(BUDGET_SPENT) ? message.slice(BUDGET_SPENT.length) : undefined;
  if (last === undefined) return message.startsWith(SLOT_NOT_SERVED);
  return !last.startsWith('ReplyError: CLUSTERDOWN') || last.startsWith(SLOT_NOT_SERVED, 'ReplyError: '.length);
}

/**
 * The nodes of a Cluster client whose connection it lost (closed, refused,
 * dropped from the pool) and has not had ready since, by `host:port` as the
 * client's pool names them. At most one entry per node address the client
 * ever lost, and only while it stays lost.
 */
export class LostNodes {
  private readonly lost = new Set<string>();

  constructor(private readonly client: Cluster) {
    client.on('-node', this.onLost);
    client.on('+node', this.onAdded);
  }

  /** Whether the node a MOVED named (`host:port`, as the server knows it; mapped through natMap as ioredis does) is lost. */
  has(target: string): boolean {
    if (this.lost.size === 0) return false;
    const natMapper = (this.client as unknown as { natMapper?: (key: string) => { host?: string; port?: number } }).natMapper;
    const mapped = typeof natMapper === 'function' ? natMapper.call(this.client, target) : undefined;
    return this.lost.has(mapped?.host !== undefined && mapped.port !== undefined ? `${mapped.host}:${mapped.port}` : target);
  }

  close(): void {
    this.client.off('-node', this.onLost);
    this.client.off('+node', this.onAdded);
  }

  private readonly onLost = (redis: Redis | undefined): void => {
    const key = poolKey(redis);
    if (key !== undefined) this.lost.add(key);
  };

  /** A connection (re)made for a node: found again once it is ready. */
  private readonly onAdded = (redis: Redis | undefined): void => {
    const key = poolKey(redis);
    if (key !== undefined) redis!.once('ready', () => this.lost.delete(key));
  };
}

function poolKey(redis: Redis | undefined): string | undefined {
  const options = redis?.options;
  return options?.host === undefined || options.port === undefined ? undefined : `${options.host}:${options.port}`;
}

// Redis Cluster failures that mean "L2 is unavailable" rather than "this one
// command failed": L2Store opens its breaker on them, as on a timeout, so a
// request pays for them once per breaker cooldown instead of on every call.
// Told apart by ioredis's error messages (6.x), read here only.
import type { Cluster } from 'ioredis';
import { isCluster, type RedisClient } from './redis-client.js';

const BUDGET_SPENT = 'Too many Cluster redirections. Last error: ';
const MOVED_LAST = /^ReplyError: MOVED \d+ (\S+)$/;

/**
 * A command whose node stayed unreachable until the client's redirection
 * budget ran out (a dead master before its replica takes over, or one this
 * instance is cut off from while the others reach it). ioredis answers a
 * closed connection by trying a random node, which answers MOVED back to
 * the unreachable one, so the last error is either: "Connection is closed."
 * or a MOVED to a node the client holds no ready connection to (its
 * connection dropped, or re-made and not up). A budget spent on MOVED or ASK
 * between nodes that answer (slots moving while resharding) is not this, and
 * stays a failure of that command alone.
 */
export function nodeGone(error: Error, client: RedisClient): boolean {
  const message = error.message;
  if (!message.startsWith(BUDGET_SPENT)) return false;
  const last = message.slice(BUDGET_SPENT.length);
  if (last === 'Error: Connection is closed.') return true;
  const target = MOVED_LAST.exec(last)?.[1];
  return target !== undefined && isCluster(client) && !connectedTo(client, target);
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

/** Whether `client` holds a ready connection to the node a MOVED named (`host:port`, as the server knows it; mapped through natMap as ioredis does). */
function connectedTo(client: Cluster, target: string): boolean {
  const natMapper = (client as unknown as { natMapper?: (key: string) => { host?: string; port?: number } }).natMapper;
  const mapped = typeof natMapper === 'function' ? natMapper.call(client, target) : undefined;
  const key = mapped?.host !== undefined && mapped.port !== undefined ? `${mapped.host}:${mapped.port}` : target;
  return client.nodes('all').some((node) => node.status === 'ready' && `${node.options.host}:${node.options.port}` === key);
}

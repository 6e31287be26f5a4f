// Mocha root hooks (registered through `require` in .mocharc.cjs): after the
// whole run, kill every redis-server a test started and did not stop, cluster
// nodes included, so no server outlives the test process.
import type { RootHookObject } from 'mocha';
import { stopAllRedisServers } from './redis-server.js';

export const mochaHooks: RootHookObject = {
  async afterAll() {
    await stopAllRedisServers();
  },
};

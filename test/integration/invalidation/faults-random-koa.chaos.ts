// Random faults while Koa instances invalidate (run on demand, not in the suite:
// `FUZZ_MS=60000 npx mocha test/integration/invalidation/faults-random-koa.chaos.ts`).
// The Koa twin of faults-random.chaos.ts, with the workload of koa-chaos.ts on
// three instances (Koa 3, Koa 2, Koa 3), each behind its own TCP proxy to one
// redis-server. Links are cut, cut twice in a row, blackholed, slowed past
// l2.commandTimeout or stalled for seconds; and now and then (REDIS_FAULTS=0:
// never) Redis itself is SIGKILLed and restarted, shut down (SHUTDOWN NOSAVE)
// and started again, frozen (SIGSTOP) or flushed. The rules are koa-chaos.ts's.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Koa from 'koa';
import { Koa2 } from '../middleware/apps.js';
import { useRedisCaches } from '../../support/cache-context.js';
import { CHAOS_ROUTES, linkFaults, rnd, runKoaChaos, type ChaosInstance } from '../../support/koa-chaos.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const FUZZ_MS = Number(process.env['FUZZ_MS'] ?? 40_000);
const REDIS_FAULTS = process.env['REDIS_FAULTS'] !== '0';

describe('Koa: invalidation under random link and Redis faults (three instances, all invalidating)', function () {
  this.timeout(FUZZ_MS + 60_000);
  const ctx = useRedisCaches({ prefix: 'kchaos', flush: false, defaults: { routes: CHAOS_ROUTES } });
  it('no answer is older than an invalidation its instance made or heard before the request, and none is a 5xx', async () => {
    const proxies: TcpProxy[] = [];
    const instances: ChaosInstance[] = [];
    for (const [name, K] of [['A', Koa], ['B', Koa2], ['C', Koa]] as const) {
      const proxy = await startTcpProxy(ctx.redis.port, '127.0.0.1', 0, true);
      proxies.push(proxy);
      const cache = await ctx.open({ redis: proxy.url, l2: { commandTimeout: 300, lockTimeout: rnd(2) === 0 ? 0 : 500 } });
      cache.on('error', () => undefined);
      instances.push({ name, cache, Koa: K });
    }
    let fault = '-';
    const redisFaults = async (stopped: () => boolean) => {
      while (!stopped()) {
        await sleep(3000 + rnd(4000));
        if (stopped()) break;
        const kind = rnd(4);
        fault = ['restart', 'shutdown', 'freeze', 'flushall'][kind]!;
        if (kind === 0) { ctx.redis.kill('SIGKILL'); await ctx.redis.exited(); await sleep(rnd(1000)); await ctx.redis.restart(); }
        else if (kind === 1) { await ctx.admin.shutdown('NOSAVE').catch(() => undefined); await ctx.redis.exited(); await sleep(rnd(1000)); await ctx.redis.restart(); }
        else if (kind === 2) { ctx.redis.freeze(); await sleep(rnd(1500)); ctx.redis.thaw(); }
        else await ctx.admin.flushall().catch(() => undefined);
        fault = '-';
      }
    };
    const faults = [
      (s: () => boolean) => linkFaults(proxies[0]!, 2500, s),
      (s: () => boolean) => linkFaults(proxies[1]!, 100, s),
      (s: () => boolean) => linkFaults(proxies[2]!, 1500, s),
      ...(REDIS_FAULTS ? [redisFaults] : []),
    ];
    const { failures, outage, summary } = await runKoaChaos(instances, FUZZ_MS, faults, () => fault);
    if (!ctx.redis.running) await ctx.redis.restart();
    console.log(`      ${summary}`);
    for (const p of proxies) await p.close();
    if (failures.length + outage.length > 0) writeFileSync(join(tmpdir(), `invalidation-chaos-koa-${Date.now()}.txt`), [...failures, '--- the outage fallback:', ...outage].join('\n'));
    assert.deepEqual(failures.slice(0, 5), []);
  });
});

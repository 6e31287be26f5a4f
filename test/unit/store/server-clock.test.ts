// ServerClock: a deadline on Redis's clock, from samples of its TIME, is never later than the instant it stands for.
import assert from 'node:assert/strict';
import { ServerClock } from '../../../src/store/server-clock.js';

/** Redis's clock runs 5 s ahead of this process's monotonic one (ms). */
const AHEAD = 5_000_000;
const redisAt = (local: number) => (local + AHEAD) * 1000;

describe('store: ServerClock', () => {
  it('gives no deadline before a sample, after forget(), or from a sample over a minute old', () => {
    const clock = new ServerClock();
    assert.equal(clock.deadline(1_000, 0), undefined);
    clock.learn(redisAt(100), 100);
    assert.notEqual(clock.deadline(1_000, 200), undefined);
    assert.equal(clock.deadline(70_200, 70_200), undefined, 'a stale sample gave a deadline');
    clock.forget();
    assert.equal(clock.deadline(1_000, 200), undefined);
  });

  it('never puts a deadline later than its instant: a sample read before its reply arrived bounds the offset from below', () => {
    const clock = new ServerClock();
    // TIME read at local 100, the reply arriving at 140 (a 40 ms trip back).
    clock.learn(redisAt(100), 140);
    const deadline = clock.deadline(1_140, 140)!;
    assert.ok(deadline <= redisAt(1_140), `${deadline} past ${redisAt(1_140)}`);
    assert.ok(deadline >= redisAt(1_100) - 1_000, 'early by more than the trip back');
    // A faster sample tightens it; a slower one within 10 s does not loosen it.
    clock.learn(redisAt(2_000), 2_001);
    const tight = clock.deadline(3_000, 2_001)!;
    clock.learn(redisAt(3_000), 3_300);
    assert.equal(clock.deadline(3_000, 3_300), tight);
    assert.ok(tight <= redisAt(3_000) && tight >= redisAt(2_999) - 1_000);
  });

  it('takes the newest sample once the kept one is 10 s old: a clock stepped back since is followed', () => {
    const clock = new ServerClock();
    clock.learn(redisAt(100), 100);
    // Redis's clock stepped back 2 s.
    clock.learn(redisAt(20_000) - 2_000_000, 20_000);
    assert.ok(clock.deadline(21_000, 20_000)! <= redisAt(21_000) - 2_000_000);
  });
});

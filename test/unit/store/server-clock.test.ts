// ServerClock: instants on Redis's clock, from samples of its TIME, bounded from both sides by the sample's round trip.
import assert from 'node:assert/strict';
import { ServerClock } from '../../../src/store/server-clock.js';

/** Redis's clock runs 5 s ahead of this process's monotonic one (ms). */
const AHEAD = 5_000_000;
const redisAt = (local: number) => (local + AHEAD) * 1000;

describe('store: ServerClock', () => {
  it('gives no deadline before a sample, or from a sample over a minute old', () => {
    const clock = new ServerClock();
    assert.equal(clock.deadline(1_000, 0), undefined);
    clock.learn(redisAt(100), 100, 100);
    assert.notEqual(clock.deadline(1_000, 200), undefined);
    assert.equal(clock.deadline(70_200, 70_200), undefined, 'a stale sample gave a deadline');
  });

  it('never puts a deadline later than its instant, whenever in the round trip Redis read its clock', () => {
    for (const read of [100, 120, 140]) {
      const clock = new ServerClock();
      // Sent at local 100, the reply arriving at 140.
      clock.learn(redisAt(read), 100, 140);
      const deadline = clock.deadline(1_140, 140)!;
      assert.ok(deadline <= redisAt(1_140), `${deadline} past ${redisAt(1_140)}`);
      assert.ok(deadline >= redisAt(1_140) - 41_000, 'early by more than the round trip');
    }
  });

  it('gives no deadline while its bounds are wider than half the wait left, one again once a sample tightens them', () => {
    const clock = new ServerClock();
    // The reply handled 150 ms after Redis read its clock (this process busy): the only sample.
    clock.learn(redisAt(1_000), 1_000, 1_150);
    assert.equal(clock.deadline(1_350, 1_150), undefined, 'a deadline up to 150 ms early for a 200 ms wait');
    assert.notEqual(clock.deadline(1_450, 1_150), undefined, 'none for a wait twice the width');
    clock.learn(redisAt(2_000), 2_000, 2_001);
    const deadline = clock.deadline(2_201, 2_001)!;
    assert.ok(deadline <= redisAt(2_201) && deadline >= redisAt(2_201) - 2_000, String(redisAt(2_201) - deadline));
  });

  it('tightens its bounds with every sample, never past the instant', () => {
    const clock = new ServerClock();
    // Redis read its clock late in the first round trip, early in the second.
    clock.learn(redisAt(1_039), 1_000, 1_040);
    clock.learn(redisAt(2_001), 2_000, 2_040);
    const deadline = clock.deadline(3_000, 2_040)!;
    assert.ok(deadline <= redisAt(3_000), `${deadline} past ${redisAt(3_000)}`);
    assert.ok(deadline >= redisAt(3_000) - 3_000, `${redisAt(3_000) - deadline} µs early, where the two samples agree within 2 ms`);
  });

  for (const step of [2_000, -2_000]) {
    it(`follows a clock stepped ${step > 0 ? 'forward' : 'back'} at the next sample (bounds that no longer meet)`, () => {
      const clock = new ServerClock();
      clock.learn(redisAt(1_000), 1_000, 1_001);
      clock.learn(redisAt(2_000) + step * 1000, 2_000, 2_040);
      const deadline = clock.deadline(3_000, 2_040)!;
      assert.ok(deadline <= redisAt(3_000) + step * 1000, 'late');
      assert.ok(deadline >= redisAt(3_000) + step * 1000 - 41_000, 'early by more than the round trip');
    });
  }

  // A step smaller than what the samples' round trips leave open cannot be told from where in them Redis read its
  // clock: the bounds still meet, and what they agree on no longer holds the offset. What that costs is bounded by
  // the step, so by the round trip of the sample it happened before (sub-millisecond on a LAN).
  for (const step of [-20, 20]) {
    it(`a clock stepped ${step > 0 ? 'forward' : 'back'} by less than a round trip goes unseen: its deadlines and instants are off by at most the step`, () => {
      const clock = new ServerClock();
      // The first sample read late (back) or early (forward) in its 40 ms trip, the second at the other end.
      clock.learn(redisAt(step < 0 ? 1_039 : 1_001), 1_000, 1_040);
      clock.learn(redisAt(step < 0 ? 2_039 : 2_001) + step * 1000, 2_000, 2_040);
      assert.equal(clock.steps, 0, 'premise: the step was seen');
      const real = (local: number) => redisAt(local) + step * 1000;
      const off = Math.abs(step) * 1000;
      const deadline = clock.deadline(3_000, 2_040)!;
      // 25 ms apart: more than the 20 ms the two samples agree on, less than either one's 40 ms.
      const instant = clock.between(2_100, 2_125, 2_040)!;
      if (step < 0) assert.ok(deadline > real(3_000) && instant > real(2_125), 'premise: the deadline and the instant are late');
      else assert.ok(instant < real(2_100), 'premise: the instant is early');
      assert.ok(deadline <= real(3_000) + off, `a deadline ${(deadline - real(3_000)) / 1000} ms late, past the ${Math.abs(step)} ms step`);
      assert.ok(instant >= real(2_100) - off && instant <= real(2_125) + off, `an instant ${(instant - real(2_100)) / 1000} ms from the first, past the ${Math.abs(step)} ms step`);
    });
  }

  it('counts the samples that disagree with the ones before (a step, another server), not those that agree, after a lost connection too', () => {
    const clock = new ServerClock();
    clock.learn(redisAt(1_000), 1_000, 1_001);
    clock.learn(redisAt(2_000), 2_000, 2_003);
    assert.equal(clock.steps, 0);
    clock.learn(redisAt(3_000) + 50_000, 3_000, 3_001);
    assert.equal(clock.steps, 1, 'a step of 50 ms forward went unseen');
    clock.newConnection();
    clock.learn(redisAt(4_000) + 50_000, 4_000, 4_002);
    assert.equal(clock.steps, 1, 'the same server after a reconnection was taken for a step');
    clock.newConnection();
    clock.learn(redisAt(5_000) - 1_000_000, 5_000, 5_002);
    assert.equal(clock.steps, 2, 'another server 1 s behind went unseen');
  });

  it('after a lost connection, keeps its sample until the next one, which replaces it whatever it says (another server)', () => {
    const clock = new ServerClock();
    clock.learn(redisAt(100), 100, 100);
    const before = clock.deadline(1_000, 200);
    clock.newConnection();
    assert.equal(clock.deadline(1_000, 200), before);
    // The new server's clock is 1 s behind the old one's, and the sample slower: still taken.
    clock.learn(redisAt(300) - 1_000_000, 290, 300);
    assert.ok(clock.deadline(1_300, 300)! <= redisAt(1_300) - 1_000_000);
  });

  it('between(): an instant no earlier than the first and no later than the second, or none when the round trip blurs them', () => {
    const clock = new ServerClock();
    clock.learn(redisAt(120), 100, 140);
    const at = clock.between(1_000, 1_200, 1_000)!;
    assert.ok(at >= redisAt(1_000) && at <= redisAt(1_200), String(at));
    assert.equal(clock.between(1_000, 1_030, 1_000), undefined, '30 ms apart with a 40 ms sample');
  });

  it('takes no sample that cannot be one: a time of 0 or below, a reply before its command', () => {
    const clock = new ServerClock();
    clock.learn(0, 100, 100);
    clock.learn(-redisAt(100), 100, 100);
    // The reply "arrived" before the command was sent (NaN included): no bounds at all.
    clock.learn(redisAt(100), 100, 90);
    clock.learn(redisAt(100), 100, Number.NaN);
    assert.equal(clock.deadline(1_000, 100), undefined);
  });

  it("after a lost connection, the next sample is not narrowed by the old server's: a new server 25 ms behind gets no late deadline", () => {
    const clock = new ServerClock();
    clock.learn(redisAt(1_000), 1_000, 1_001);
    clock.newConnection();
    // Its clock is 25 ms behind the old one's, read late in a 40 ms round trip: bounds that still meet the old ones.
    const behind = 25_000;
    clock.learn(redisAt(2_039) - behind, 2_000, 2_040);
    const deadline = clock.deadline(3_000, 2_040)!;
    assert.ok(deadline <= redisAt(3_000) - behind, `${deadline - (redisAt(3_000) - behind)} µs past the instant on the new server`);
  });

  it('after a lost connection, the samples that follow the first tighten the bounds again', () => {
    const clock = new ServerClock();
    clock.learn(redisAt(100), 100, 101);
    clock.newConnection();
    // Two slow samples (150 ms), Redis reading its clock early in one and late in the other: together they agree within 1 ms.
    clock.learn(redisAt(1_000), 1_000, 1_150);
    clock.learn(redisAt(2_150), 2_000, 2_150);
    assert.notEqual(clock.deadline(2_350, 2_150), undefined, 'no deadline for a 200 ms wait: the bounds stayed 150 ms wide');
  });

  it('widens what an older sample says by the drift since: a clock that drifts (80 ppm) gets no deadline late, no instant early', () => {
    for (const drift of [-4, 4]) {
      const clock = new ServerClock();
      clock.learn(redisAt(1_000), 1_000, 1_001);
      // 50 s later Redis's clock is `drift` ms off what it was, read halfway through a 40 ms round trip.
      const offset = drift * 1000;
      clock.learn(redisAt(51_020) + offset, 51_000, 51_040);
      const deadline = clock.deadline(52_000, 51_040)!;
      assert.ok(deadline <= redisAt(52_000) + offset, `drift ${drift}: deadline ${deadline - redisAt(52_000) - offset} µs late`);
      const at = clock.between(52_000, 53_000, 51_040)!;
      assert.ok(at >= redisAt(52_000) + offset, `drift ${drift}: between() ${redisAt(52_000) + offset - at} µs before its first instant`);
    }
  });

  it('moves a deadline earlier by the drift since its sample: a Redis clock 80 ppm slow, 50 s on, gets no late deadline', () => {
    const clock = new ServerClock();
    clock.learn(redisAt(1_000), 1_000, 1_001);
    // 50 s on, Redis's clock is 4 ms behind where the sample put it.
    const slow = 4_000;
    const deadline = clock.deadline(51_000, 50_000)!;
    assert.ok(deadline <= redisAt(51_000) - slow, `${deadline - (redisAt(51_000) - slow)} µs late`);
  });

  it('between(): none for two instants closer than the sample can tell apart, asked ahead of time', () => {
    const clock = new ServerClock();
    // Redis read its clock as the command left: a 40 ms round trip, the offset at the top of its bounds.
    clock.learn(redisAt(100), 100, 140);
    // A wait long enough for a deadline, but from and until only 20 ms apart: the latest instant the
    // bounds allow for `until` may be before `from` on Redis's clock.
    assert.equal(clock.between(1_500, 1_520, 1_000), undefined);
    const at = clock.between(1_500, 1_600, 1_000)!;
    assert.ok(at >= redisAt(1_500) && at <= redisAt(1_600), String(at));
  });
});

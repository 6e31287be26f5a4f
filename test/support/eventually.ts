// Polls a condition until it holds or a bound passes: for tests that wait on
// another process (a Redis node, another instance's bus) where no event tells
// when it is done. The bound only proves that nothing hangs.
import assert from 'node:assert/strict';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `check` holds; fails the test with `what` if it does not within `ms`. */
export async function eventually(check: () => Promise<boolean> | boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(5);
  }
}

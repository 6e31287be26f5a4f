// Root hook loaded only by the mutation runs (stryker.config.mjs). Stryker
// runs the suite in long-lived workers while other workers share the 2 cores,
// and a few tests wait on timing (a coalescing window, a 200 ms Redis command
// timeout): a failure there in the dry run aborts the whole run, and in a
// mutant run it counts a mutant as killed that nothing killed. A real kill
// fails every try, so retrying costs time only on the mutants that are killed:
// one retry, as two made each kill cost three runs of its test.
import type { RootHookObject } from 'mocha';

const RETRIES = 1;

export const mochaHooks: RootHookObject = {
  beforeEach(this: Mocha.Context) {
    this.currentTest?.retries(RETRIES);
  },
};

// A TagVersions version source for unit tests that decide from local state
// alone: any call to Redis throws, so a test fails if its case reached Redis.
import type { VersionSource } from '../../src/store/tag-versions.js';

const never = (): never => {
  throw new Error('the version source was asked');
};

export const neverAsked: VersionSource = {
  read: async () => never(),
  bump: async () => never(),
  bumpEpoch: async () => never(),
  serverEpoch: async () => never(),
  counterKey: (tag) => tag,
  epochKey: 'epoch',
};

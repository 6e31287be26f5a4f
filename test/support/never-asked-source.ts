// A TagVersions version source for unit tests that decide from local state
// alone: any call to Redis throws, so a test fails if its case reached Redis.
import { TagVersions, type VersionSource } from '../../src/store/tag-versions.js';

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

/** An epoch as the clock makes one (µs). */
export const CLOCK_EPOCH = 1_700_000_000_000_000;

/** TagVersions on neverAsked as with the bus connected: trusted, and the epoch read (CLOCK_EPOCH). */
export function trustedVersions(): TagVersions {
  const versions = new TagVersions({ source: neverAsked, maxTags: 100 });
  versions.trusted = true; // as with the bus connected
  versions.raiseEpoch(CLOCK_EPOCH); // as the connection check reads it
  return versions;
}

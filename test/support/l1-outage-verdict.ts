// What TieredStore.get gives an L1 entry while Redis may not answer: Redis's
// word, else servableInOutage's (an outage costs freshness bounded by l1.ttl,
// not availability). The unit tests of TagVersions judge entries by it.
import type { FillStamp } from '../../src/store/entry.js';
import type { TagVersions } from '../../src/store/tag-versions.js';

export async function verify(versions: TagVersions, entry: FillStamp): Promise<boolean> {
  return (await versions.vouch(entry)) ?? versions.servableInOutage(entry);
}

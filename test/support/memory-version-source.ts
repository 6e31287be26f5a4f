// An in-memory stand-in for Redis's version counters, for unit tests of
// TagVersions' local rules (the integration tests run them against a real
// redis-server).
import type { ServerEpoch, VersionSource } from '../../src/store/tag-versions.js';

/** Counters in a Map, starting where Redis's clock-seeded ones would; `down` makes every call fail. */
export class MemorySource implements VersionSource {
  readonly counters = new Map<string, number>();
  epoch = 1_700_000_000_000_000;
  down = false;
  readonly epochKey = 'epoch';

  counterKey(tag: string): string {
    return tag;
  }

  private check(): void {
    if (this.down) throw new Error('Redis is not connected');
  }

  private current(tag: string): number {
    const v = this.counters.get(tag) ?? this.epoch;
    this.counters.set(tag, v);
    return v;
  }

  async read(tags: readonly string[]): Promise<{ epoch: number; versions: number[] }> {
    this.check();
    return { epoch: this.epoch, versions: tags.map((t) => this.current(t)) };
  }

  async bump(tags: readonly string[], floors?: readonly number[]): Promise<number[]> {
    this.check();
    return tags.map((t, i) => {
      const v = Math.max(this.current(t), floors?.[i] ?? 0) + 1;
      this.counters.set(t, v);
      return v;
    });
  }

  async bumpEpoch(floor = 0): Promise<number> {
    this.check();
    this.epoch = Math.max(this.epoch, floor) + 1;
    return this.epoch;
  }

  async serverEpoch(): Promise<ServerEpoch> {
    this.check();
    return { epoch: this.epoch, previous: 'same' };
  }
}

// A getOrSet() loader held at a gate: it reads the "row" (its version) as it
// starts, as a slow query would, and returns it once the test opens the gate.
// Tests start it, make a caller join it, invalidate or write meanwhile, and
// then see which value each caller gets.

export interface GatedLoader {
  /** The loader to hand getOrSet(): `v<version>` as read when it started. */
  readonly load: () => Promise<string>;
  /** Resolves once the loader has started (its first run). */
  readonly started: Promise<void>;
  /** How many times the loader ran. */
  readonly runs: number;
  /** The row the next run reads. */
  version: number;
  /** Lets every run held at the gate return. */
  open(): void;
}

export function gatedLoader(): GatedLoader {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let started!: () => void;
  const startedPromise = new Promise<void>((resolve) => (started = resolve));
  const loader = {
    version: 1,
    runs: 0,
    started: startedPromise,
    open,
    load: async () => {
      const mine = loader.version;
      loader.runs++;
      started();
      await gate;
      return `v${mine}`;
    },
  };
  return loader;
}

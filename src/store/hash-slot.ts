// Redis Cluster hash slots, computed here so tiercache can group keys by slot
// before sending them (one script per slot, never a cross-slot one) and name
// a key in any given slot. The slot of a key is CRC16 (XMODEM) of its hash tag
// (the text between the first '{' and the next '}', when not empty) or of the
// whole key, modulo 16384 (the Redis Cluster specification).

export const SLOT_COUNT = 16384;

const CRC_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

function crc16(bytes: Uint8Array, start: number, end: number): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!;
  return crc;
}

const encoder = new TextEncoder();

/** The Cluster slot of `key`. */
export function keySlot(key: string): number {
  const bytes = encoder.encode(key);
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(0x7b); // '{'
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1); // '}'
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  return crc16(bytes, start, end) & (SLOT_COUNT - 1);
}

let slotTags: string[] | undefined;

/**
 * A short hash tag that lands in `slot`: `{tag}:anything` is a key of that
 * slot. The table is built once, on first use.
 */
export function slotHashTag(slot: number): string {
  slotTags ??= buildSlotTags();
  return slotTags[slot]!;
}

/** Every slot's shortest base-36 counter (about 170,000 CRCs of a few bytes). Exported for its tests: slotHashTag keeps one. */
export function buildSlotTags(): string[] {
  // Stryker disable next-line ArrayDeclaration: preallocated for speed; the loop runs until every index is assigned
  const tags: string[] = new Array(SLOT_COUNT);
  let found = 0;
  for (let n = 0; found < SLOT_COUNT; n++) {
    const tag = n.toString(36);
    let crc = 0;
    for (let i = 0; i < tag.length; i++) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ tag.charCodeAt(i)) & 0xff]!;
    const s = crc & (SLOT_COUNT - 1);
    if (tags[s] === undefined) {
      tags[s] = tag;
      found++;
    }
  }
  return tags;
}

/** Positions of `keys`, grouped by slot (in order of first appearance, positions ascending). */
export function groupBySlot(keys: readonly string[]): Array<{ slot: number; at: number[] }> {
  const groups = new Map<number, number[]>();
  for (let i = 0; i < keys.length; i++) {
    const slot = keySlot(keys[i]!);
    const at = groups.get(slot);
    if (at === undefined) groups.set(slot, [i]);
    else at.push(i);
  }
  return [...groups].map(([slot, at]) => ({ slot, at }));
}

/**
 * Positions of `keys` in batches of at most `maxKeys`, to send one batch
 * after another; the first starts with position 0. Without `maxSlots`,
 * consecutive runs. With it (a Cluster, where a batch costs one command per
 * slot it holds), the keys of a slot sit together (a slot straddles two
 * batches at most), and a batch holds at most `maxSlots` slots.
 */
export function batchPositions(keys: readonly string[], maxKeys: number, maxSlots?: number): number[][] {
  const batches: number[][] = [];
  let batch: number[] = [];
  let slots = 0;
  const add = (i: number, newSlot: boolean) => {
    if (batch.length === maxKeys || (newSlot && slots === maxSlots)) {
      batches.push(batch);
      batch = [];
      slots = 0;
    }
    if (newSlot || batch.length === 0) slots++;
    batch.push(i);
  };
  if (maxSlots !== undefined) for (const { at } of groupBySlot(keys)) at.forEach((i, n) => add(i, n === 0));
  else for (let i = 0; i < keys.length; i++) add(i, false);
  // Stryker disable next-line ConditionalExpression: only an empty `keys` leaves an empty batch
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/**
 * The keys in `slot` that record which Redis process last served the slot
 * and the floor of its version counters, and beside it the master_replid2
 * that process was last seen with (see SLOT_GUARD in redis-scripts.ts).
 * Shared by every namespace: a failover moves slots, not namespaces.
 */
export function slotGuardKeys(slot: number): [guard: string, followed: string] {
  const guard = slotGuardKey(slot);
  return [guard, `${guard}:replid2`];
}

/** The first of slotGuardKeys(slot): the run id and the floor (the format every version reads). */
export function slotGuardKey(slot: number): string {
  return `{${slotHashTag(slot)}}:tiercache:guard`;
}

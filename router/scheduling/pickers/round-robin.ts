import type { Picker } from '../types.ts';

/** Ignores scores and cycles through the candidates in id order: the baseline policy. */
export function roundRobinPicker(): Picker {
  let next = 0;
  return {
    pick(scored) {
      if (scored.length === 0) return undefined;
      const sorted = scored.map((s) => s.candidate).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      return sorted[next++ % sorted.length];
    },
  };
}

import type { Picker } from '../types.ts';

/** Highest score wins; exact ties are broken at random so equal nodes share the load. */
export function maxScorePicker(random: () => number = Math.random): Picker {
  return {
    pick(scored) {
      let best: typeof scored = [];
      let bestScore = -Infinity;
      for (const s of scored) {
        if (s.score > bestScore + 1e-12) {
          best = [s];
          bestScore = s.score;
        } else if (Math.abs(s.score - bestScore) <= 1e-12) {
          best.push(s);
        }
      }
      if (best.length === 0) return undefined;
      return best[Math.floor(random() * best.length)]!.candidate;
    },
  };
}

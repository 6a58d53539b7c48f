// Names -> plugins, so a profile is chosen in config (`router.scheduling`): a new policy is a new
// file, a line here and a line of config.
import type { Filter, Picker, Scorer } from './types.ts';
import { SchedulingProfile, type WeightedScorer } from './profile.ts';
import { servesModel } from './filters/serves-model.ts';
import { available } from './filters/available.ts';
import { gpuHealthy } from './filters/gpu-healthy.ts';
import { kvCapacity } from './filters/kv-capacity.ts';
import { predictedWait } from './scorers/predicted-wait.ts';
import { freeSlots } from './scorers/free-slots.ts';
import { kvFit } from './scorers/kv-fit.ts';
import { gpuDegraded } from './scorers/gpu-degraded.ts';
import { inFlight } from './scorers/in-flight.ts';
import { prefixAffinity } from './scorers/prefix-affinity.ts';
import { maxScorePicker } from './pickers/max-score.ts';
import { roundRobinPicker } from './pickers/round-robin.ts';

export const SCORER_NAMES = ['predicted-wait', 'free-slots', 'kv-fit', 'gpu-degraded', 'in-flight', 'prefix-affinity'] as const;
export type ScorerName = (typeof SCORER_NAMES)[number];
export const PICKER_NAMES = ['max-score', 'round-robin'] as const;
export type PickerName = (typeof PICKER_NAMES)[number];

export interface ProfileConfig {
  /** scorer name -> weight; a scorer left out (or weight 0) is not run. */
  scorers: Partial<Record<ScorerName, number>>;
  picker: PickerName;
  degradedScore: number;
  affinity: { yieldFactor: number; yieldSlackSeconds: number };
}

/**
 * The default: the slot wait first (a free batch slot beats any queue), affinity next (it saves
 * whole prefills; it yields to clearly less loaded peers), then headroom and the rest.
 */
export const DEFAULT_PROFILE: ProfileConfig = {
  scorers: { 'predicted-wait': 4, 'free-slots': 1, 'in-flight': 1, 'kv-fit': 1, 'gpu-degraded': 1, 'prefix-affinity': 3 },
  picker: 'max-score',
  degradedScore: 0,
  affinity: { yieldFactor: 1, yieldSlackSeconds: 0.5 },
};

export function buildScorer(name: ScorerName, cfg: ProfileConfig): Scorer {
  switch (name) {
    case 'predicted-wait':
      return predictedWait;
    case 'free-slots':
      return freeSlots;
    case 'kv-fit':
      return kvFit;
    case 'gpu-degraded':
      return gpuDegraded(cfg.degradedScore);
    case 'in-flight':
      return inFlight();
    case 'prefix-affinity':
      return prefixAffinity(cfg.affinity);
  }
}

export function buildPicker(name: PickerName, random: () => number = Math.random): Picker {
  return name === 'round-robin' ? roundRobinPicker() : maxScorePicker(random);
}

export function baseFilters(statusStaleMs: number): Filter[] {
  return [servesModel, available(statusStaleMs), gpuHealthy, kvCapacity];
}

export function buildProfile(cfg: ProfileConfig, statusStaleMs: number, random: () => number = Math.random): SchedulingProfile {
  const scorers: WeightedScorer[] = [];
  for (const name of SCORER_NAMES) {
    const weight = cfg.scorers[name] ?? 0;
    if (weight > 0) scorers.push({ scorer: buildScorer(name, cfg), weight });
  }
  return new SchedulingProfile(baseFilters(statusStaleMs), scorers, buildPicker(cfg.picker, random));
}

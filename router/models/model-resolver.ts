// Resolves the model a client asked for: an alias from config, or a model some node reports.
// Unknown everywhere -> 404; known but no node usable now -> the dispatcher's 503.
import { errors } from '../../common/errors.ts';
import type { Scheduler } from '../scheduling/scheduler.ts';
import { pickTarget } from './catalog.ts';

export class ModelResolver {
  constructor(
    private readonly aliases: Record<string, string>,
    private readonly scheduler: Scheduler,
    /** Models served even with no node (a fallback chain with hosted providers). */
    private readonly alwaysKnown: ReadonlySet<string> = new Set(),
    /** Canary splits (router.catalog.splits): alias -> weighted targets, sticky per key. */
    private readonly splits: Record<string, { model: string; weight: number }[]> = {},
  ) {}

  /** `stickyKey` (the key id) keeps a key on one target of a split; absent: a random pick. */
  resolve(requested: string, stickyKey?: string): string {
    const split = this.splits[requested];
    const model = split ? pickTarget(requested, split, stickyKey ?? String(Math.random())) : this.aliases[requested] ?? requested;
    if (!this.alwaysKnown.has(model) && !this.scheduler.knownModels().has(model)) throw errors.modelNotFound(requested);
    return model;
  }

  /** Aliases whose target is currently served. */
  servedAliases(served: Set<string>): string[] {
    const aliases = Object.entries(this.aliases).filter(([alias, target]) => !this.splits[alias] && served.has(target)).map(([alias]) => alias);
    return [...aliases, ...Object.entries(this.splits).filter(([, ts]) => ts.some((t) => served.has(t.model))).map(([alias]) => alias)];
  }
}

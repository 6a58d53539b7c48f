// Resolves the model a client asked for: an alias from config, or a model some node reports.
// Unknown everywhere -> 404; known but no node usable now -> the dispatcher's 503.
// The client's model name is only ever a Map key here: a plain object would answer
// `constructor` or `__proto__` with Object.prototype's members (issue 17).
import { errors } from '../../common/errors.ts';
import type { Scheduler } from '../scheduling/scheduler.ts';
import { pickTarget } from './catalog.ts';

type Targets = readonly { model: string; weight: number }[];

export class ModelResolver {
  private readonly aliases: ReadonlyMap<string, string>;
  private readonly splits: ReadonlyMap<string, Targets>;

  constructor(
    aliases: Readonly<Record<string, string>>,
    private readonly scheduler: Scheduler,
    /** Models served even with no node (a fallback chain with hosted providers). */
    private readonly alwaysKnown: ReadonlySet<string> = new Set(),
    /** Canary splits (router.catalog.splits): alias -> weighted targets, sticky per key. */
    splits: Readonly<Record<string, Targets>> = {},
  ) {
    this.aliases = new Map(Object.entries(aliases));
    this.splits = new Map(Object.entries(splits));
  }

  /** `stickyKey` (the key id) keeps a key on one target of a split; absent: a random pick. */
  resolve(requested: string, stickyKey?: string): string {
    const split = this.splits.get(requested);
    const model = split ? pickTarget(requested, split, stickyKey ?? String(Math.random())) : (this.aliases.get(requested) ?? requested);
    if (!this.alwaysKnown.has(model) && !this.scheduler.knownModels().has(model)) throw errors.modelNotFound(requested);
    return model;
  }

  /** Aliases whose target is currently served. */
  servedAliases(served: Set<string>): string[] {
    const aliases = [...this.aliases].filter(([alias, target]) => !this.splits.has(alias) && served.has(target)).map(([alias]) => alias);
    return [...aliases, ...[...this.splits].filter(([, ts]) => ts.some((t) => served.has(t.model))).map(([alias]) => alias)];
  }
}

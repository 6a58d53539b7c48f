// Resolves the model a client asked for: an alias from config, or a model some node reports.
// Unknown everywhere -> 404; known but no node usable now -> the dispatcher's 503.
import { errors } from '../../common/errors.ts';
import type { Scheduler } from '../scheduling/scheduler.ts';

export class ModelResolver {
  constructor(
    private readonly aliases: Record<string, string>,
    private readonly scheduler: Scheduler,
    /** Models served even with no node (a fallback chain with hosted providers). */
    private readonly alwaysKnown: ReadonlySet<string> = new Set(),
  ) {}

  resolve(requested: string): string {
    const model = this.aliases[requested] ?? requested;
    if (!this.alwaysKnown.has(model) && !this.scheduler.knownModels().has(model)) throw errors.modelNotFound(requested);
    return model;
  }

  /** Aliases whose target is currently served. */
  servedAliases(served: Set<string>): string[] {
    return Object.entries(this.aliases).filter(([, target]) => served.has(target)).map(([alias]) => alias);
  }
}

// The model catalog: weighted canary splits behind an alias (sticky per API key: a hash of the
// key id picks the target, so one key always sees the same model while the weights hold) and
// prices for cost accounting (USD per million input / output tokens, per model and per backend;
// local GPU cost per token for self-hosted models without a list price).
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { own } from '../../common/own.ts';

const priceSchema = z.strictObject({
  /** USD per million prompt tokens. */
  inputPerMTok: z.number().min(0),
  /** USD per million completion tokens. */
  outputPerMTok: z.number().min(0),
});
export type Price = z.infer<typeof priceSchema>;

export const catalogConfigSchema = z.strictObject({
  /** alias -> weighted targets; the weights are relative (90/10, 3/1, ...). Wins over router.aliases. */
  splits: z.record(z.string().min(1), z.array(z.strictObject({ model: z.string().min(1), weight: z.number().min(0) })).min(1)).default({}),
  /** served model -> list price. */
  prices: z.record(z.string().min(1), priceSchema).default({}),
  /** backend (`x-backend`: node:<id>, openai:<model>, ...) -> price; wins over the model's price. */
  backendPrices: z.record(z.string().min(1), priceSchema).default({}),
  /** USD per token (input and output alike) for models served by our nodes with no list price. */
  localGpuCostPerToken: z.number().min(0).default(0),
});
export type CatalogConfig = z.infer<typeof catalogConfigSchema>;

/** A stable point in [0, 1) for (alias, key): the same key lands on the same target. */
export function stickyPoint(alias: string, stickyKey: string): number {
  return createHash('sha256').update(`${alias}\0${stickyKey}`).digest().readUInt32BE(0) / 2 ** 32;
}

/** The split's target for this key: cumulative weights over the key's sticky point. */
export function pickTarget(alias: string, targets: readonly { model: string; weight: number }[], stickyKey: string): string {
  const total = targets.reduce((s, t) => s + t.weight, 0);
  if (total <= 0) return targets[0]!.model;
  let at = stickyPoint(alias, stickyKey) * total;
  for (const t of targets) {
    if (at < t.weight) return t.model;
    at -= t.weight;
  }
  return targets[targets.length - 1]!.model;
}

/** Cost in USD of one request: backend price, else the model's, else local GPU cost for our nodes. */
export function costOf(catalog: CatalogConfig | undefined, model: string, backend: string, promptTokens: number, completionTokens: number): number {
  if (!catalog) return 0;
  // The model name is the client's (own properties only: `constructor` has no price).
  const price = own(catalog.backendPrices, backend) ?? own(catalog.prices, model);
  if (price) return (promptTokens * price.inputPerMTok + completionTokens * price.outputPerMTok) / 1e6;
  return backend.startsWith('node:') ? (promptTokens + completionTokens) * catalog.localGpuCostPerToken : 0;
}

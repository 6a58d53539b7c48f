// The embedded budget store: spend in process memory (one router, or tests).
import type { BudgetStore, Spend } from './budgets.ts';

export class MemoryBudgetStore implements BudgetStore {
  readonly kind = 'memory' as const;
  private readonly spend = new Map<string, Spend>();

  async read(keys: readonly string[]): Promise<Spend[]> {
    return keys.map((k) => ({ ...(this.spend.get(k) ?? { costUsd: 0, tokens: 0 }) }));
  }

  async add(keys: readonly string[], s: Spend): Promise<Spend[]> {
    return keys.map((k) => {
      const cur = this.spend.get(k) ?? { costUsd: 0, tokens: 0 };
      const next = { costUsd: cur.costUsd + s.costUsd, tokens: cur.tokens + s.tokens };
      this.spend.set(k, next);
      return { ...next };
    });
  }

  async close(): Promise<void> {}
}

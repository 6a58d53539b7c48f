// Circuit breakers per provider and per GPU node. Closed: every request goes; outcomes land in a
// rolling window, and the breaker opens when enough of them failed (errors, timeouts, slow first
// tokens: a brownout counts as a failure). Open: nothing goes until `openMs` has passed. Half-open:
// at most `halfOpenProbes` requests at a time probe; `closeAfterSuccesses` successes in a row
// close it, one failure opens it again.
export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerOptions {
  windowMs: number;
  /** Fewer outcomes than this in the window never open the breaker. */
  minRequests: number;
  /** Failure share in the window at or above which the breaker opens. */
  errorRate: number;
  openMs: number;
  halfOpenProbes: number;
  closeAfterSuccesses: number;
}

export const DEFAULT_BREAKER: BreakerOptions = {
  windowMs: 30_000,
  minRequests: 5,
  errorRate: 0.5,
  openMs: 10_000,
  halfOpenProbes: 1,
  closeAfterSuccesses: 2,
};

/** One admitted request: report how it went exactly once (or release it unjudged). */
export interface Permit {
  success(): void;
  failure(): void;
  release(): void;
}

export type TransitionListener = (name: string, from: BreakerState, to: BreakerState) => void;

export class CircuitBreaker {
  private stateNow: BreakerState = 'closed';
  private outcomes: { at: number; ok: boolean }[] = [];
  private openedAt = 0;
  private probes = 0;
  private successesInRow = 0;

  constructor(
    readonly name: string,
    private readonly o: BreakerOptions,
    private readonly onTransition: TransitionListener = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  get state(): BreakerState {
    if (this.stateNow === 'open' && this.now() - this.openedAt >= this.o.openMs) this.move('half_open');
    return this.stateNow;
  }

  /** True when a request would be admitted now (no side effects beyond the open -> half-open clock). */
  canPass(): boolean {
    const s = this.state;
    return s === 'closed' || (s === 'half_open' && this.probes < this.o.halfOpenProbes);
  }

  tryAcquire(): Permit | undefined {
    if (!this.canPass()) return undefined;
    const probe = this.stateNow === 'half_open';
    if (probe) this.probes += 1;
    let done = false;
    const finish = (ok: boolean | undefined) => {
      if (done) return;
      done = true;
      if (probe) this.probes -= 1;
      if (ok !== undefined) this.record(ok, probe);
    };
    return { success: () => finish(true), failure: () => finish(false), release: () => finish(undefined) };
  }

  private record(ok: boolean, probe: boolean): void {
    const now = this.now();
    if (this.stateNow === 'half_open' || probe) {
      if (!ok) return this.open(now);
      this.successesInRow += 1;
      if (this.stateNow === 'half_open' && this.successesInRow >= this.o.closeAfterSuccesses) {
        this.outcomes = [];
        this.move('closed');
      }
      return;
    }
    if (this.stateNow !== 'closed') return;
    this.outcomes.push({ at: now, ok });
    const from = now - this.o.windowMs;
    while (this.outcomes.length && this.outcomes[0]!.at < from) this.outcomes.shift();
    const failed = this.outcomes.filter((x) => !x.ok).length;
    if (this.outcomes.length >= this.o.minRequests && failed / this.outcomes.length >= this.o.errorRate) this.open(now);
  }

  private open(now: number): void {
    this.openedAt = now;
    this.outcomes = [];
    this.move('open');
  }

  private move(to: BreakerState): void {
    const from = this.stateNow;
    if (from === to) return;
    this.stateNow = to;
    this.successesInRow = 0;
    this.onTransition(this.name, from, to);
  }
}

/** Breakers by name (`node:<id>`, `provider:<name>`), created on first use with shared options. */
export class BreakerSet {
  private readonly byName = new Map<string, CircuitBreaker>();

  constructor(
    private readonly o: BreakerOptions,
    private readonly onTransition: TransitionListener = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  get(name: string): CircuitBreaker {
    let b = this.byName.get(name);
    if (!b) {
      b = new CircuitBreaker(name, this.o, this.onTransition, this.now);
      this.byName.set(name, b);
    }
    return b;
  }

  /** Names (without the prefix) whose breaker would refuse a request now. */
  refusing(prefix: string): Set<string> {
    const out = new Set<string>();
    for (const [name, b] of this.byName) if (name.startsWith(prefix) && !b.canPass()) out.add(name.slice(prefix.length));
    return out;
  }

  all(): CircuitBreaker[] {
    return [...this.byName.values()];
  }
}

// A continuous-batching engine model in the shape of vLLM V1's scheduler, with no I/O and no
// timers: the driver (server.ts, or a unit test) calls beginStep() to schedule one engine step
// and learn how long it takes, waits that long on whatever clock it owns, then calls endStep()
// to deliver the tokens that step produced. Time comes from an injected now() so unit tests
// are deterministic and fast.
//
// What is modelled (and what is deliberately not):
// - FIFO waiting queue, strict head-of-line: admission stops at the first request that does not
//   fit (vLLM's default FCFS policy does the same).
// - Admission while running < maxNumSeqs and the request's KV blocks fit in the free pool.
// - KV cache in blocks of blockSize tokens; each decode step may need one more block per
//   sequence. When the pool is empty, the most recently admitted sequence is preempted: its
//   blocks are freed and it goes back to the FRONT of the waiting queue, to be recomputed
//   (prompt + tokens generated so far) when readmitted, as vLLM V1 does (it has no swap).
//   A step that preempted admits nothing new (vLLM V1 behaves the same).
// - Prefill cost = prefillMsPerToken x tokens to (re)compute, minus prefix-cache hits, added to
//   the step that admits the sequence; the prefill step also yields the first token.
// - Decode step time = (decodeStepMs + decodeStepMsPerSeq x batch size) x slowdown / speed.
// - Automatic prefix caching (vLLM's APC): a prompt's full blocks are registered under their
//   chained hashes when the sequence is admitted. A later sequence whose leading hashes are
//   cached shares those blocks (reference counts; no new KV for them) and skips their prefill.
//   A block nobody references stays cached but counts as free: it is evicted, least recently
//   used first, only when an allocation needs the room (so the cache lives within the KV
//   capacity; `prefixCacheBlocks` bounds it further). A preempted sequence's blocks go back to
//   that pool, so its recompute hits what was not evicted meanwhile. Queries and hits are counted
//   in tokens at first admission, like vLLM's vllm:prefix_cache_* counters.

export interface EngineConfig {
  maxNumSeqs: number;
  kvCacheTokens: number;
  blockSize: number;
  prefillMsPerToken: number;
  decodeStepMs: number;
  decodeStepMsPerSeq: number;
  speed: number;
  slowdown: number;
  /** bound on remembered prefix-block hashes (LRU) */
  prefixCacheBlocks?: number;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface SequenceListener {
  /**
   * One generated token; index is 0-based over the whole output. finish is set on the last
   * token: 'stop' means the model emitted its end-of-sequence token (text is then ''), as a
   * real model does; 'length' means max_tokens was reached with an ordinary token.
   */
  onToken(index: number, text: string, finish: Exclude<FinishReason, 'abort'> | null): void;
  /** at first admission: prompt tokens served from the prefix cache */
  onAdmitted?(cachedTokens: number): void;
}

/** Timing observations the metrics module turns into vLLM's histograms. */
export interface EngineObserver {
  onPromptTokens?(n: number): void;
  onGenerationToken?(): void;
  onPrefixCache?(queries: number, hits: number): void;
  onPreemption?(): void;
  onFirstToken?(ttftS: number, queueS: number): void;
  onInterToken?(itlS: number): void;
  onFinish?(reason: FinishReason, e2eS: number): void;
}

export interface SubmitRequest {
  id: string;
  promptTokens: number;
  /** tokens this sequence will generate before it stops on its own ('stop') */
  naturalTokens: number;
  /** hard cap ('length') */
  maxTokens: number;
  /** hash chain of the prompt's full blocks, first block first */
  prefixHashes: string[];
  /** deterministic token text source */
  nextWord: () => string;
  listener: SequenceListener;
}

interface Sequence {
  req: SubmitRequest;
  generated: number;
  /** KV blocks the sequence holds: its shared (cached, hashed) blocks plus its private ones */
  blocks: number;
  /** hashes of the cached blocks it references (a prefix of its prompt's blocks) */
  shared: string[];
  arrivedAt: number;
  firstScheduledAt: number | null;
  lastTokenAt: number | null;
  /** tokens this sequence must (re)compute at its next admission; 0 while running */
  pendingPrefill: number;
  everAdmitted: boolean;
}

export interface EngineState {
  running: number;
  waiting: number;
  kvCacheUsedTokens: number;
  kvCacheCapacityTokens: number;
  preemptions: number;
  completed: number;
  aborted: number;
}

export class BatchingEngine {
  private readonly waiting: Sequence[] = [];
  /** admission order: the last element is the most recently admitted */
  private readonly running: Sequence[] = [];
  private readonly byId = new Map<string, Sequence>();
  private readonly totalBlocks: number;
  /** blocks held by one sequence each (decode growth, partial prompt blocks) */
  private privateBlocks = 0;
  /** hash -> number of sequences referencing the cached block */
  private readonly cache = new Map<string, number>();
  /** cached blocks nobody references, least recently used first: free, but still hits */
  private readonly evictable = new Map<string, true>();
  private inStep = false;
  readonly counters = { preemptions: 0, completed: 0, aborted: 0, promptTokens: 0, generationTokens: 0, prefixQueries: 0, prefixHits: 0 };

  constructor(
    readonly config: EngineConfig,
    private readonly now: () => number,
    private readonly observer: EngineObserver = {},
  ) {
    this.totalBlocks = Math.floor(config.kvCacheTokens / config.blockSize);
  }

  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.config.blockSize);
  }

  /** Queue a request. Throws when it could never fit in the whole KV cache. */
  submit(req: SubmitRequest): void {
    if (this.byId.has(req.id)) throw new Error(`duplicate sequence id ${req.id}`);
    if (this.blocksFor(req.promptTokens + 1) > this.totalBlocks) {
      throw new Error(`prompt of ${req.promptTokens} tokens exceeds the KV cache of ${this.totalBlocks * this.config.blockSize} tokens`);
    }
    // A sequence must always fit the whole cache on its own, or it could never be readmitted
    // after a preemption (a livelock). Real vLLM refuses to start unless the KV cache holds one
    // max_model_len sequence; here the output is capped instead, ending with 'length'.
    const room = this.totalBlocks * this.config.blockSize - req.promptTokens - 1;
    if (req.maxTokens > room) req = { ...req, maxTokens: Math.max(1, room) };
    const seq: Sequence = {
      req,
      generated: 0,
      blocks: 0,
      shared: [],
      arrivedAt: this.now(),
      firstScheduledAt: null,
      lastTokenAt: null,
      pendingPrefill: req.promptTokens,
      everAdmitted: false,
    };
    this.byId.set(req.id, seq);
    this.waiting.push(seq);
  }

  /** Remove a sequence at once (client went away): frees its slot and KV blocks. */
  abort(id: string): boolean {
    const seq = this.byId.get(id);
    if (!seq) return false;
    this.removeEverywhere(seq);
    this.counters.aborted++;
    this.observer.onFinish?.('abort', (this.now() - seq.arrivedAt) / 1000);
    return true;
  }

  /** Abort everything (shutdown, engine death); returns the ids that were in flight. */
  abortAll(): string[] {
    const ids = [...this.byId.keys()];
    for (const id of ids) this.abort(id);
    return ids;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0;
  }

  state(): EngineState {
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      kvCacheUsedTokens: this.usedBlocks() * this.config.blockSize,
      kvCacheCapacityTokens: this.totalBlocks * this.config.blockSize,
      preemptions: this.counters.preemptions,
      completed: this.counters.completed,
      aborted: this.counters.aborted,
    };
  }

  kvCacheUsage(): number {
    return this.totalBlocks === 0 ? 0 : this.usedBlocks() / this.totalBlocks;
  }

  /** The ids in admission order / queue order, for tests. */
  runningIds(): string[] {
    return this.running.map((s) => s.req.id);
  }
  waitingIds(): string[] {
    return this.waiting.map((s) => s.req.id);
  }

  /**
   * Schedule one step: grow running sequences' KV (preempting under pressure), admit from the
   * waiting queue, and return the step's duration in ms, or null when there is nothing to run.
   */
  beginStep(): number | null {
    if (this.inStep) throw new Error('beginStep called twice without endStep');
    let preempted = false;
    // Oldest first: they keep their blocks; the newest are the victims.
    for (let i = 0; i < this.running.length; i++) {
      const seq = this.running[i]!;
      const need = this.blocksFor(seq.req.promptTokens + seq.generated + 1) - seq.blocks;
      if (need <= 0) continue;
      while (this.freeBlocks() < need) {
        const victim = this.running[this.running.length - 1]!;
        this.preempt(victim);
        preempted = true;
        if (victim === seq) break;
      }
      if (!this.running.includes(seq)) break; // it preempted itself; everything after is gone too
      this.allocate(need);
      seq.blocks += need;
    }

    let prefillTokens = 0;
    if (!preempted) {
      while (this.waiting.length > 0 && this.running.length < this.config.maxNumSeqs) {
        const seq = this.waiting[0]!;
        const blocks = this.blocksFor(seq.req.promptTokens + seq.generated + 1);
        const hits = this.leadingHits(seq.req.prefixHashes);
        const revived = hits.filter((h) => this.cache.get(h) === 0).length;
        if (blocks - hits.length > this.freeBlocks() - revived) break; // strict FIFO: no overtaking
        this.waiting.shift();
        prefillTokens += this.admitPrefill(seq, hits, blocks);
        if (seq.firstScheduledAt === null) seq.firstScheduledAt = this.now();
        this.running.push(seq);
      }
    }

    if (this.running.length === 0) return null;
    this.inStep = true;
    const c = this.config;
    const scale = c.slowdown / c.speed;
    return (prefillTokens * c.prefillMsPerToken + c.decodeStepMs + c.decodeStepMsPerSeq * this.running.length) * scale;
  }

  /** Finish the step begun by beginStep(): every running sequence emits one token. */
  endStep(): void {
    if (!this.inStep) return;
    this.inStep = false;
    const t = this.now();
    // Copy: listeners may abort sequences (fault injection) while we iterate.
    for (const seq of [...this.running]) {
      if (!this.byId.has(seq.req.id)) continue;
      const index = seq.generated;
      seq.generated++;
      this.counters.generationTokens++;
      this.observer.onGenerationToken?.();
      if (seq.lastTokenAt === null) {
        this.observer.onFirstToken?.((t - seq.arrivedAt) / 1000, ((seq.firstScheduledAt ?? t) - seq.arrivedAt) / 1000);
      } else {
        this.observer.onInterToken?.((t - seq.lastTokenAt) / 1000);
      }
      seq.lastTokenAt = t;
      const done = seq.generated >= seq.req.maxTokens ? 'length' : seq.generated >= seq.req.naturalTokens ? 'stop' : null;
      const text = done === 'stop' ? '' : seq.req.nextWord();
      if (done) {
        this.removeEverywhere(seq);
        this.counters.completed++;
        this.observer.onFinish?.(done, (t - seq.arrivedAt) / 1000);
      }
      seq.req.listener.onToken(index, text, done);
    }
  }

  /** Convenience for tests: one whole step; returns its duration or null when idle. */
  step(): number | null {
    const d = this.beginStep();
    if (d !== null) this.endStep();
    return d;
  }

  /** Blocks in use: private ones plus cached ones some sequence references. */
  private usedBlocks(): number {
    return this.privateBlocks + this.cache.size - this.evictable.size;
  }

  /** Blocks an allocation may take: never used, or cached but unreferenced (evicted on demand). */
  private freeBlocks(): number {
    return this.totalBlocks - this.usedBlocks();
  }

  /** Takes `n` private blocks, evicting least recently used unreferenced cached blocks for room. */
  private allocate(n: number): void {
    let short = n - (this.totalBlocks - this.privateBlocks - this.cache.size);
    for (const h of this.evictable.keys()) {
      if (short <= 0) break;
      this.evictable.delete(h);
      this.cache.delete(h);
      short--;
    }
    this.privateBlocks += n;
  }

  /** The prompt's leading block hashes present in the cache. */
  private leadingHits(hashes: string[]): string[] {
    let n = 0;
    while (n < hashes.length && this.cache.has(hashes[n]!)) n++;
    return hashes.slice(0, n);
  }

  /**
   * Admits `seq` holding `blocks` blocks in all: references the cached `hits`, allocates the rest,
   * registers its newly computed full prompt blocks in the cache. Returns the tokens to prefill.
   */
  private admitPrefill(seq: Sequence, hits: string[], blocks: number): number {
    for (const h of hits) this.ref(h);
    const fresh = blocks - hits.length;
    this.allocate(fresh);
    const shared = [...hits];
    // This prompt's other full blocks become cached blocks of its own (hash chains make a hash
    // after a miss new; one that is somehow cached already stays a private block here).
    const full = Math.min(seq.req.prefixHashes.length, Math.floor(seq.req.promptTokens / this.config.blockSize));
    for (let i = hits.length; i < full && shared.length < blocks; i++) {
      const h = seq.req.prefixHashes[i]!;
      if (this.cache.has(h)) break;
      this.privateBlocks--;
      this.cache.set(h, 1);
      shared.push(h);
    }
    seq.shared = shared;
    seq.blocks = blocks;
    this.boundCache();

    const hitTokens = Math.min(hits.length * this.config.blockSize, seq.req.promptTokens);
    if (!seq.everAdmitted) {
      seq.everAdmitted = true;
      this.counters.promptTokens += seq.req.promptTokens;
      this.observer.onPromptTokens?.(seq.req.promptTokens);
      this.counters.prefixQueries += seq.req.promptTokens;
      this.counters.prefixHits += hitTokens;
      this.observer.onPrefixCache?.(seq.req.promptTokens, hitTokens);
      seq.req.listener.onAdmitted?.(hitTokens);
    }
    const tokens = Math.max(0, seq.pendingPrefill - hitTokens);
    seq.pendingPrefill = 0;
    return tokens;
  }

  private ref(h: string): void {
    const n = this.cache.get(h) ?? 0;
    if (n === 0) this.evictable.delete(h);
    this.cache.set(h, n + 1);
  }

  /** Gives back every block `seq` holds: private ones are freed, cached ones become evictable (most recent last). */
  private release(seq: Sequence): void {
    this.privateBlocks -= seq.blocks - seq.shared.length;
    // Last block first, as vLLM frees them: a prompt's tail is evicted before its head, so a
    // shared prefix outlives the suffixes that hang off it.
    for (const h of [...seq.shared].reverse()) {
      const n = (this.cache.get(h) ?? 1) - 1;
      this.cache.set(h, n);
      if (n === 0) this.evictable.set(h, true);
    }
    seq.shared = [];
    seq.blocks = 0;
    this.boundCache();
  }

  /** Optional bound on cached blocks (`prefixCacheBlocks`): drops unreferenced ones, LRU first. */
  private boundCache(): void {
    const cap = this.config.prefixCacheBlocks;
    if (cap === undefined) return;
    for (const h of this.evictable.keys()) {
      if (this.cache.size <= cap) break;
      this.evictable.delete(h);
      this.cache.delete(h);
    }
  }

  private preempt(seq: Sequence): void {
    const i = this.running.indexOf(seq);
    if (i >= 0) this.running.splice(i, 1);
    this.release(seq);
    // Recompute: the prompt and every token generated so far must be prefilled again.
    seq.pendingPrefill = seq.req.promptTokens + seq.generated;
    this.waiting.unshift(seq);
    this.counters.preemptions++;
    this.observer.onPreemption?.();
  }

  private removeEverywhere(seq: Sequence): void {
    this.byId.delete(seq.req.id);
    const r = this.running.indexOf(seq);
    if (r >= 0) this.running.splice(r, 1);
    const w = this.waiting.indexOf(seq);
    if (w >= 0) this.waiting.splice(w, 1);
    this.release(seq);
  }
}

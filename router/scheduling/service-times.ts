// Per-node mean time a sequence holds its batch slot (first token -> end), as this router sees
// its own requests: an exponentially weighted mean. With max_num_seqs it gives the node's drain
// rate (see saturation.ts), and it reflects the node's real speed (slow GPU, long outputs).
export class ServiceTimes {
  private readonly mean = new Map<string, number>();

  /** `alpha`: weight of each new observation. */
  constructor(private readonly alpha = 0.05) {}

  observe(nodeId: string, seconds: number): void {
    if (!(seconds >= 0) || !Number.isFinite(seconds)) return;
    const m = this.mean.get(nodeId);
    this.mean.set(nodeId, m === undefined ? seconds : m + this.alpha * (seconds - m));
  }

  /** The node's mean slot time in seconds; undefined until one of its requests finished. */
  get(nodeId: string): number | undefined {
    return this.mean.get(nodeId);
  }

  forget(nodeId: string): void {
    this.mean.delete(nodeId);
  }
}

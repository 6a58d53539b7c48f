// What a node may register, besides proving its identity: an address in the operator's allowed
// ranges and ports, bounded models and labels, and a rate of registrations (per node id and in
// all), so a stolen or buggy credential cannot point routers anywhere or churn the membership.
import { BlockList, isIP } from 'node:net';
import type { ControlPlaneConfig } from '../config.ts';

export type NodesPolicyConfig = ControlPlaneConfig['nodes'];

export interface Refusal {
  status: 400 | 403 | 429;
  message: string;
  retryAfterSeconds?: number;
}

/** `host:port` or `[v6]:port` -> parts; undefined when it is not one. */
export function splitAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

export class RegistrationPolicy {
  private readonly networks = new BlockList();
  private readonly names: string[] = [];
  private readonly suffixes: string[] = [];
  private readonly anyAddress: boolean;
  private readonly ports: [number, number][];
  /** Registration times per node id and overall, within the last minute. */
  private readonly recent = new Map<string, number[]>();
  private all: number[] = [];

  constructor(
    private readonly cfg: NodesPolicyConfig,
    private readonly now: () => number = Date.now,
  ) {
    for (const a of cfg.allowedAddresses) {
      const [net, bits] = a.split('/');
      const kind = isIP(net!);
      if (kind && bits !== undefined) this.networks.addSubnet(net!, Number(bits), kind === 6 ? 'ipv6' : 'ipv4');
      else if (kind) this.networks.addAddress(net!, kind === 6 ? 'ipv6' : 'ipv4');
      else if (a.startsWith('*.')) this.suffixes.push(a.slice(1).toLowerCase());
      else this.names.push(a.toLowerCase());
    }
    this.anyAddress = cfg.allowedAddresses.length === 0;
    this.ports = cfg.allowedPorts.map((p) => {
      if (typeof p === 'number') return [p, p];
      const [a, b] = p.split('-').map(Number) as [number, number];
      return [a, b];
    });
  }

  /** Checks what a node asks to register; undefined = allowed. */
  check(input: { id: string; address: string; models?: string[]; labels?: Record<string, string> }): Refusal | undefined {
    const addr = splitAddress(input.address);
    if (!addr) return { status: 400, message: `address '${input.address.slice(0, 100)}': expected host:port` };
    if (!this.addressAllowed(addr.host))
      return { status: 403, message: `address ${input.address}: host is outside controlPlane.nodes.allowedAddresses` };
    if (this.ports.length > 0 && !this.ports.some(([a, b]) => addr.port >= a && addr.port <= b))
      return { status: 403, message: `address ${input.address}: port is outside controlPlane.nodes.allowedPorts` };
    if ((input.models?.length ?? 0) > this.cfg.maxModelsPerNode)
      return { status: 400, message: `models: at most ${this.cfg.maxModelsPerNode} per node` };
    if (Object.keys(input.labels ?? {}).length > this.cfg.maxLabelsPerNode)
      return { status: 400, message: `labels: at most ${this.cfg.maxLabelsPerNode} per node` };
    return this.rate(input.id);
  }

  private addressAllowed(host: string): boolean {
    if (this.anyAddress) return true;
    const kind = isIP(host);
    if (kind) return this.networks.check(host, kind === 6 ? 'ipv6' : 'ipv4');
    const h = host.toLowerCase();
    return this.names.includes(h) || this.suffixes.some((s) => h.endsWith(s));
  }

  private rate(id: string): Refusal | undefined {
    const t = this.now();
    const cutoff = t - 60_000;
    this.all = this.all.filter((x) => x > cutoff);
    const mine = (this.recent.get(id) ?? []).filter((x) => x > cutoff);
    if (this.all.length >= this.cfg.registrationsPerMinute)
      return {
        status: 429,
        message: 'Too many node registrations; retry shortly.',
        retryAfterSeconds: Math.ceil((this.all[0]! - cutoff) / 1000),
      };
    if (mine.length >= this.cfg.registrationsPerMinutePerNode)
      return {
        status: 429,
        message: `Too many registrations of node '${id}'; retry shortly.`,
        retryAfterSeconds: Math.ceil((mine[0]! - cutoff) / 1000),
      };
    mine.push(t);
    this.all.push(t);
    this.recent.set(id, mine);
    // Forget ids not seen for a minute (bounded by the overall rate anyway).
    if (this.recent.size > this.cfg.registrationsPerMinute)
      for (const [k, v] of this.recent) if (v.every((x) => x <= cutoff)) this.recent.delete(k);
    return undefined;
  }
}

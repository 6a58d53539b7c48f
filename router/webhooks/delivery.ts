// Outbound webhook delivery, shared by batch completion and budget events. A router sits inside
// the cluster (often next to GPU nodes and cloud metadata), so a webhook URL is an SSRF vector:
// - no redirects are followed (a 3xx is a failed delivery: the receiver cannot bounce us inward);
// - the host is resolved once (dns.lookup, all addresses) and every address is checked: private,
//   loopback, link-local (169.254/16 incl. cloud metadata, fe80::/10), unique local (fc00::/7),
//   CGNAT (100.64/10), unspecified, multicast and reserved targets are refused unless the operator
//   allows them (`allowPrivateTargets`, or `allowTargets`: CIDRs, addresses or host names);
// - the connection goes to the checked address (undici's connect `lookup` is pinned to it), so
//   a DNS answer that changes between check and connect (rebinding) cannot swap the target.
import { createHmac } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { Agent, request } from 'undici';
import { z } from 'zod';

/** CIDR (`10.0.0.0/8`, `fd00::/8`), an address, or a host name (matched exactly, case-insensitive). */
const allowEntry = z
  .string()
  .min(1)
  .max(253)
  .refine((s) => parseCidr(s) !== undefined || /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(s), 'a CIDR, an IP address or a host name');

/** The fields every webhook config takes (spread into its zod object). */
export const outboundPolicyShape = {
  /** Allow private, loopback, link-local and other internal targets (off: refused). */
  allowPrivateTargets: z.boolean().default(false),
  /** Internal targets allowed one by one: CIDRs, addresses or host names. */
  allowTargets: z.array(allowEntry).max(64).default([]),
};
export const outboundPolicySchema = z.strictObject(outboundPolicyShape);
export type OutboundPolicy = { allowPrivateTargets: boolean; allowTargets: readonly string[] };

export type AddressClass =
  'public' | 'private' | 'loopback' | 'link_local' | 'unique_local' | 'cgnat' | 'unspecified' | 'multicast' | 'reserved' | 'invalid';

const RANGES: [AddressClass, string, number, 'ipv4' | 'ipv6'][] = [
  ['unspecified', '0.0.0.0', 8, 'ipv4'],
  ['private', '10.0.0.0', 8, 'ipv4'],
  ['cgnat', '100.64.0.0', 10, 'ipv4'],
  ['loopback', '127.0.0.0', 8, 'ipv4'],
  ['link_local', '169.254.0.0', 16, 'ipv4'],
  ['private', '172.16.0.0', 12, 'ipv4'],
  ['reserved', '192.0.0.0', 24, 'ipv4'],
  ['reserved', '192.0.2.0', 24, 'ipv4'],
  ['private', '192.168.0.0', 16, 'ipv4'],
  ['reserved', '198.18.0.0', 15, 'ipv4'],
  ['reserved', '198.51.100.0', 24, 'ipv4'],
  ['reserved', '203.0.113.0', 24, 'ipv4'],
  ['multicast', '224.0.0.0', 4, 'ipv4'],
  ['reserved', '240.0.0.0', 4, 'ipv4'],
  ['unspecified', '::', 128, 'ipv6'],
  ['loopback', '::1', 128, 'ipv6'],
  ['unique_local', 'fc00::', 7, 'ipv6'],
  ['link_local', 'fe80::', 10, 'ipv6'],
  ['reserved', 'fec0::', 10, 'ipv6'],
  ['multicast', 'ff00::', 8, 'ipv6'],
  ['reserved', '2001:db8::', 32, 'ipv6'],
  ['reserved', '100::', 64, 'ipv6'],
];
const LISTS = new Map<AddressClass, BlockList>();
for (const [cls, net, prefix, type] of RANGES) {
  const list = LISTS.get(cls) ?? new BlockList();
  list.addSubnet(net, prefix, type);
  LISTS.set(cls, list);
}

/** An IPv4 address embedded in an IPv6 one (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96), if any. */
function embeddedV4(ip: string): string | undefined {
  const lower = ip.toLowerCase();
  const m = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (m) return m[1];
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (!hex) return undefined;
  const [hi, lo] = [parseInt(hex[1]!, 16), parseInt(hex[2]!, 16)];
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** What kind of address `ip` is; anything but `public` is internal. */
export function classifyAddress(ip: string): AddressClass {
  const bare = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  const family = isIP(bare);
  if (family === 0) return 'invalid';
  if (family === 6) {
    const v4 = embeddedV4(bare);
    if (v4) return classifyAddress(v4);
  }
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const [cls, list] of LISTS) if (list.check(bare, type)) return cls;
  if (type === 'ipv4' && bare === '255.255.255.255') return 'reserved';
  return 'public';
}

function parseCidr(s: string): { net: string; prefix: number; type: 'ipv4' | 'ipv6' } | undefined {
  const [net, p, extra] = s.split('/');
  if (extra !== undefined || !net) return undefined;
  const family = isIP(net);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  const prefix = p === undefined ? max : /^\d{1,3}$/.test(p) ? Number(p) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { net, prefix, type: family === 4 ? 'ipv4' : 'ipv6' };
}

/** True when the policy lets this (internal) address through. */
function allowedByList(ip: string, host: string, policy: OutboundPolicy): boolean {
  const family = isIP(ip);
  const v4 = family === 6 ? embeddedV4(ip) : undefined;
  for (const entry of policy.allowTargets) {
    if (entry.toLowerCase() === host.toLowerCase()) return true;
    const c = parseCidr(entry);
    if (!c) continue;
    const list = new BlockList();
    list.addSubnet(c.net, c.prefix, c.type);
    if (list.check(ip, family === 4 ? 'ipv4' : 'ipv6') || (v4 !== undefined && c.type === 'ipv4' && list.check(v4, 'ipv4'))) return true;
  }
  return false;
}

export class TargetRefused extends Error {
  constructor(
    message: string,
    readonly addressClass: AddressClass,
  ) {
    super(message);
  }
}

/** The addresses of the URL's host, each checked against the policy; throws TargetRefused. */
export type Resolver = (host: string) => Promise<{ address: string; family: number }[]>;
const systemResolver: Resolver = (host) => lookup(host, { all: true, verbatim: true });

export async function resolveTarget(
  url: URL,
  policy: OutboundPolicy,
  timeoutMs = 5_000,
  resolve: Resolver = systemResolver,
): Promise<{ address: string; family: 4 | 6 }[]> {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  let addresses: { address: string; family: number }[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    let timer: NodeJS.Timeout | undefined;
    try {
      addresses = await Promise.race([
        resolve(host),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`resolving ${host} took over ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
  if (addresses.length === 0) throw new Error(`${host} has no addresses`);
  // Every address must pass: a name that also points inward is refused whole.
  for (const a of addresses) {
    const cls = classifyAddress(a.address);
    if (cls === 'public' || policy.allowPrivateTargets || allowedByList(a.address, host, policy)) continue;
    throw new TargetRefused(
      `webhook target ${host} resolves to ${a.address} (${cls}); set allowPrivateTargets or allowTargets to allow it`,
      cls,
    );
  }
  return addresses.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
}

/** A lookup that answers only the checked addresses, whatever name it is asked for (no second DNS query). */
function pinnedLookup(addresses: readonly { address: string; family: 4 | 6 }[]): LookupFunction {
  return (_hostname, options, callback) => {
    // With autoSelectFamily (Node's default) net asks for all addresses and tries them in turn.
    if ((options as { all?: boolean }).all) (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [...addresses]);
    else callback(null, addresses[0]!.address, addresses[0]!.family);
  };
}

/**
 * The Standard Webhooks signature (what OpenAI's webhooks use): `v1,<base64>` of the HMAC-SHA256
 * of `<id>.<timestamp>.<body>` keyed with the secret (a `whsec_` secret is base64-decoded first).
 * The openai SDK's `client.webhooks.unwrap(body, headers, secret)` verifies it.
 */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret, 'utf8');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** `webhook-id`, `webhook-timestamp` (unix seconds) and, with a secret, `webhook-signature`. */
export function webhookHeaders(secret: string | undefined, id: string, body: string, at = Date.now()): Record<string, string> {
  const ts = Math.floor(at / 1000);
  const headers: Record<string, string> = { 'webhook-id': id, 'webhook-timestamp': String(ts) };
  if (secret) headers['webhook-signature'] = signWebhook(secret, id, ts, body);
  return headers;
}

export interface DeliveryOptions {
  timeoutMs: number;
  policy: OutboundPolicy;
  headers?: Record<string, string>;
  /** Name resolution (default: dns.lookup, all addresses); tests answer with fixed addresses. */
  resolve?: Resolver;
}

export type DeliveryResult =
  | { ok: true; status: number }
  | { ok: false; status?: number; reason: 'refused_target' | 'redirect' | 'status' | 'error' | 'bad_url'; message: string };

/** One POST of `body` (JSON) to `url`; never throws, never follows a redirect. */
export async function postWebhook(url: string, body: string, opts: DeliveryOptions): Promise<DeliveryResult> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return { ok: false, reason: 'bad_url', message: 'not a URL' };
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:')
    return { ok: false, reason: 'bad_url', message: `${target.protocol} is not http(s)` };
  const started = Date.now();
  let addresses: { address: string; family: 4 | 6 }[];
  try {
    addresses = await resolveTarget(target, opts.policy, opts.timeoutMs, opts.resolve);
  } catch (err) {
    return err instanceof TargetRefused
      ? { ok: false, reason: 'refused_target', message: err.message }
      : { ok: false, reason: 'error', message: (err as Error).message };
  }
  const left = Math.max(1, opts.timeoutMs - (Date.now() - started));
  const agent = new Agent({ connect: { lookup: pinnedLookup(addresses), timeout: left }, connections: 1, pipelining: 0 });
  try {
    const res = await request(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...opts.headers },
      body,
      dispatcher: agent,
      signal: AbortSignal.timeout(left),
      headersTimeout: left,
      bodyTimeout: left,
    });
    // The receiver's body is not wanted: read at most a little of it, then let go.
    await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
    if (res.statusCode >= 200 && res.statusCode < 300) return { ok: true, status: res.statusCode };
    if (res.statusCode >= 300 && res.statusCode < 400)
      return { ok: false, status: res.statusCode, reason: 'redirect', message: `answered ${res.statusCode}; redirects are not followed` };
    return { ok: false, status: res.statusCode, reason: 'status', message: `answered ${res.statusCode}` };
  } catch (err) {
    return { ok: false, reason: 'error', message: (err as Error).message };
  } finally {
    void agent.close().catch(() => undefined);
  }
}

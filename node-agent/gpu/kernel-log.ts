// Xid events from the kernel log. nvidia-smi never prints Xids; the NVIDIA kernel module
// (NVRM) writes them to the kernel ring buffer, so the agent reads `journalctl -k` or `dmesg`
// where the host lets it. Containers usually cannot (no CAP_SYSLOG, kernel.dmesg_restrict=1,
// no journal mounted): then `readKernelLog` returns `{ available: false, reason }` and Xid
// coverage is simply absent; nvidia-smi based rules still apply.
import { execa } from 'execa';
import { setOwn } from '../../common/own.ts';

/**
 * Well-known Xids. Source: NVIDIA "Xid Errors" documentation and its Xid catalog
 * (https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html, resolution buckets
 * RESET_GPU / RESTART_APP / CONTACT_SUPPORT / IGNORE). `unhealthy`: the GPU needs a reset or
 * service before it can be trusted; `degraded`: a recoverable hardware event; `informational`:
 * usually an application bug (bad kernel, killed process), not a GPU fault.
 */
export type XidSeverity = 'unhealthy' | 'degraded' | 'informational';
export const XID_TABLE: Readonly<Record<number, { name: string; severity: XidSeverity }>> = {
  13: { name: 'Graphics engine exception (usually an application fault)', severity: 'informational' },
  31: { name: 'GPU memory page fault (usually an application fault)', severity: 'informational' },
  43: { name: 'GPU stopped processing (application fault, channel reset)', severity: 'informational' },
  45: { name: 'Preemptive cleanup after a previous error or process kill', severity: 'informational' },
  48: { name: 'Double-bit ECC error (DBE)', severity: 'unhealthy' },
  63: { name: 'Row remapping pending / page retirement recorded (reset to activate)', severity: 'degraded' },
  64: { name: 'Row remapping / page retirement failure', severity: 'unhealthy' },
  74: { name: 'NVLink error', severity: 'unhealthy' },
  79: { name: 'GPU has fallen off the bus', severity: 'unhealthy' },
  92: { name: 'High single-bit ECC error rate', severity: 'degraded' },
  94: { name: 'Contained ECC error (affected application killed)', severity: 'degraded' },
  95: { name: 'Uncontained ECC error (GPU reset required)', severity: 'unhealthy' },
  119: { name: 'GSP RPC timeout', severity: 'unhealthy' },
  120: { name: 'GSP error', severity: 'unhealthy' },
};

export function classifyXid(xid: number): { name: string; severity: XidSeverity | 'unknown' } {
  return XID_TABLE[xid] ?? { name: 'unclassified Xid', severity: 'unknown' };
}

/**
 * One spelling for a PCI address: `dddd:bb:dd` lower case (4-digit domain, bus, device; no
 * function). Accepts `00000000:9B:00.0` (nvidia-smi), `PCI:0000:9b:00` (Xid lines),
 * `0000:9b:00.0` (other NVRM lines), `GPU0000:9B:00.0` / `GPU 0000:9B:00.0` (error messages).
 * GPUs are function 0, and Xid lines omit the function, so it is dropped.
 */
export function canonicalPciAddress(raw: string): string | null {
  const m = /(?:^|[^0-9a-f])([0-9a-f]{4,8}):([0-9a-f]{2}):([0-9a-f]{2})(?:\.[0-7])?(?![0-9a-f:])/i.exec(raw.replace(/^(PCI:|GPU ?)/i, ' '));
  if (!m) return null;
  const domain = m[1]!.slice(-4).toLowerCase();
  return `${domain}:${m[2]!.toLowerCase()}:${m[3]!.toLowerCase()}`;
}

export type TimestampKind = 'boot_seconds' | 'ctime' | 'iso' | 'none';
export interface LogTimestamp {
  kind: TimestampKind;
  raw: string | null;
  epochMs: number | null;
  bootSeconds: number | null;
}

export interface XidEvent {
  xid: number;
  /** Canonical PCI address (see canonicalPciAddress). */
  pci: string;
  pid: string | null;
  process: string | null;
  message: string;
  severity: XidSeverity | 'unknown';
  timestamp: LogTimestamp;
  /** True for the newer multi-line "fallen off the bus" message that carries no Xid number. */
  inferred: boolean;
}

export interface SxidEvent {
  sxid: number;
  pci: string;
  message: string;
  timestamp: LogTimestamp;
}

export interface KernelLogParse {
  xids: XidEvent[];
  sxids: SxidEvent[];
  /** `NVRM: GPU at PCI:0000:9b:00: GPU-<uuid>` lines: canonical PCI address -> UUID. */
  uuidByPci: Record<string, string>;
}

// Prefixes, tried in order: `dmesg --decode` facility/level, then one of the three time formats.
const DECODE_PREFIX = /^[a-z]+\s*:[a-z]+\s*:\s*/;
const TS_BOOT = /^\[\s*(\d+\.\d+)\]\s?/;
const TS_CTIME = /^\[([A-Z][a-z]{2} [A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2} \d{4})\]\s?/;
const TS_ISO = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[,.]\d+)?(?:[+-]\d{2}:?\d{2}|Z)?)\s/;

function splitTimestamp(line: string): { ts: LogTimestamp; rest: string } | null {
  const l = line.replace(DECODE_PREFIX, '');
  let m = TS_BOOT.exec(l);
  if (m) return { ts: { kind: 'boot_seconds', raw: m[1]!, epochMs: null, bootSeconds: Number(m[1]) }, rest: l.slice(m[0].length) };
  m = TS_CTIME.exec(l);
  if (m) {
    // dmesg -T prints local time without a zone; read it as the host's local time.
    const ms = Date.parse(m[1]!);
    return { ts: { kind: 'ctime', raw: m[1]!, epochMs: Number.isNaN(ms) ? null : ms, bootSeconds: null }, rest: l.slice(m[0].length) };
  }
  m = TS_ISO.exec(l);
  if (m) {
    const ms = Date.parse(m[1]!.replace(',', '.').replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
    return { ts: { kind: 'iso', raw: m[1]!, epochMs: Number.isNaN(ms) ? null : ms, bootSeconds: null }, rest: l.slice(m[0].length) };
  }
  return null;
}

const XID_RE = /NVRM: Xid \(([^)]*)\): (\d+),\s*(.*)$/;
const SXID_RE = /SXid \(([^)]*)\): (\d+),\s*(.*)$/;
const GPU_AT_RE = /NVRM: GPU at (PCI:[0-9a-fA-F:.]+): (GPU-[0-9a-fA-F-]+)/;
const PID_RE = /^pid=('?<?[^,']*>?'?), name=([^,]*),\s*(.*)$/;

function unknownToNull(v: string): string | null {
  return v === '<unknown>' || v === '' ? null : v;
}

/** Parse kernel log text (any of the three dmesg time formats, or none). Never throws. */
export function parseKernelLog(text: string): KernelLogParse {
  // Join continuation lines (indented, no timestamp) onto the entry they belong to: the newer
  // fallen-off-the-bus message spans three lines.
  const entries: { ts: LogTimestamp; msg: string }[] = [];
  for (const line of text.replace(/\r\n?/g, '\n').split('\n')) {
    if (line.trim() === '') continue;
    const split = splitTimestamp(line);
    if (split) entries.push({ ts: split.ts, msg: split.rest.trim() });
    else if (/^\s/.test(line) && entries.length > 0) entries[entries.length - 1]!.msg += ' ' + line.trim().replace(/^NVRM:\s*/, '');
    else entries.push({ ts: { kind: 'none', raw: null, epochMs: null, bootSeconds: null }, msg: line.trim() });
  }
  const out: KernelLogParse = { xids: [], sxids: [], uuidByPci: {} };
  for (const { ts, msg } of entries) {
    let m = XID_RE.exec(msg);
    if (m) {
      const pci = canonicalPciAddress(m[1]!);
      if (!pci) continue;
      const xid = Number(m[2]);
      const pm = PID_RE.exec(m[3]!);
      out.xids.push({
        xid,
        pci,
        pid: pm ? unknownToNull(pm[1]!.replace(/'/g, '')) : null,
        process: pm ? unknownToNull(pm[2]!.trim()) : null,
        message: pm ? pm[3]! : m[3]!,
        severity: classifyXid(xid).severity,
        timestamp: ts,
        inferred: false,
      });
      continue;
    }
    m = SXID_RE.exec(msg);
    if (m) {
      const pci = canonicalPciAddress(m[1]!);
      if (pci) out.sxids.push({ sxid: Number(m[2]), pci, message: m[3]!, timestamp: ts });
      continue;
    }
    m = GPU_AT_RE.exec(msg);
    if (m) {
      const pci = canonicalPciAddress(m[1]!);
      if (pci) setOwn(out.uuidByPci, pci, m[2]!);
      continue;
    }
    // 570+ open kernel module: "NVRM: The NVIDIA GPU 0000:b3:00.0 (PCI ID: ...) installed in
    // this system has fallen off the bus and is not responding to commands." No Xid number:
    // reported as an inferred Xid 79, as gpud does (leptonai/gpud PR #1209).
    const fb = /NVRM: The NVIDIA GPU ([0-9a-fA-F:.]+).*fallen off the bus/.exec(msg);
    if (fb) {
      const pci = canonicalPciAddress(fb[1]!);
      if (pci)
        out.xids.push({
          xid: 79,
          pci,
          pid: null,
          process: null,
          message: msg.replace(/^NVRM:\s*/, ''),
          severity: 'unhealthy',
          timestamp: ts,
          inferred: true,
        });
    }
  }
  return out;
}

export interface KernelLogRead {
  available: boolean;
  text: string;
  source: 'journalctl' | 'dmesg' | null;
  reason?: string;
}

/**
 * Read recent kernel messages without a shell: `journalctl -k` first (has history across
 * ring-buffer wrap), then `dmesg`. Either may be missing or refused; that is reported, not thrown.
 */
export async function readKernelLog(opts: { timeoutMs?: number; since?: string } = {}): Promise<KernelLogRead> {
  const timeout = opts.timeoutMs ?? 5000;
  const attempts: [cmd: 'journalctl' | 'dmesg', args: string[]][] = [
    ['journalctl', ['-k', '--no-pager', '-o', 'short-iso-precise', '--since', opts.since ?? '-1h']],
    ['dmesg', ['--time-format=iso']],
  ];
  const reasons: string[] = [];
  for (const [cmd, args] of attempts) {
    try {
      const r = await execa(cmd, args, { timeout, reject: false, stdin: 'ignore', forceKillAfterDelay: 1000 });
      if (r.exitCode === 0 && r.stdout.trim() !== '' && !/^-- No entries --$/m.test(r.stdout)) {
        return { available: true, text: r.stdout, source: cmd };
      }
      reasons.push(`${cmd}: ${(r.stderr || `exit ${r.exitCode}`).split('\n')[0]}`);
    } catch (err) {
      reasons.push(`${cmd}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return { available: false, text: '', source: null, reason: reasons.join('; ') };
}

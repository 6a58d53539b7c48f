// Value normalisation shared by the CSV, XML and `-q` text parsers.
// nvidia-smi spells "no value" many ways depending on output format and driver generation;
// every parser funnels raw strings through here so the policy only ever sees `null`.

const UNAVAILABLE = new Set([
  '',
  'n/a',
  '[n/a]',
  '[not supported]',
  'not supported',
  '[requested functionality has been deprecated]',
  'requested functionality has been deprecated',
  '[unknown error]',
  'unknown error',
  '[insufficient permissions]',
  'err!',
  '[gpu is lost]',
  '[function not found]',
]);

/** Trimmed string, or null when nvidia-smi says the value is unavailable. */
export function cleanText(raw: unknown): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw === 'object') return null; // a nested XML element where a leaf was expected
  const s = String(raw).trim();
  return UNAVAILABLE.has(s.toLowerCase()) ? null : s;
}

/** First number in a value such as `69.85 W`, `81559 MiB`, `45 C`, `100 %`, `192 bank(s)`. */
export function parseNumber(raw: unknown): number | null {
  const s = cleanText(raw);
  if (s === null) return null;
  const m = /^[-+]?\d+(?:\.\d+)?/.exec(s);
  if (!m) return null;
  const n = Number(m[0]);
  return Number.isFinite(n) ? n : null;
}

/** `Active`/`Not Active`, `Yes`/`No`, `Enabled`/`Disabled`, `1`/`0` -> boolean. */
export function parseFlag(raw: unknown): boolean | null {
  const s = cleanText(raw);
  if (s === null) return null;
  const v = s.toLowerCase();
  if (v === 'active' || v === 'yes' || v === 'enabled' || v === 'true' || v === '1') return true;
  if (v === 'not active' || v === 'no' || v === 'disabled' || v === 'false' || v === '0') return false;
  return null;
}

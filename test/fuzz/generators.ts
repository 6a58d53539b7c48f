// Generated hostile input for the fuzz tests, seeded (mulberry32) so a failure replays from its
// seed: JSON values of every shape, bodies that are truncated, invalid UTF-8, deep, oversized,
// prototype-poisoning or of the wrong content type, odd path parameters and query strings;
// and a sender that copes with a server refusing a body before it is written.
import { request } from 'undici';
import { connect } from 'node:net';
import { mulberry32 } from '../sim/vllm/text.ts';

export const rng = mulberry32;
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20261122);
/** Cases per surface: a few thousand in CI; FUZZ_CASES=10000 (or more) for the long run. */
export const fuzzCases = (ciDefault: number) => Number(process.env.FUZZ_CASES ?? ciDefault);

export type Rng = () => number;

/**
 * Names that exist on every plain object (Object.prototype's members, and `prototype`): client
 * input used as a key of a plain object finds these instead of nothing. Used below as values,
 * object keys, path parameters, query keys, header values and bearer tokens, and by
 * test/security/prototype-keys.test.ts as model names, lane names and bearer tokens.
 */
export const PROTOTYPE_KEYS = [
  'constructor',
  '__proto__',
  'prototype',
  'toString',
  'toLocaleString',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  'propertyIsEnumerable',
  '__defineGetter__',
  '__defineSetter__',
  '__lookupGetter__',
  '__lookupSetter__',
] as const;

export interface BodyCase {
  contentType: string | undefined;
  body: string | Buffer;
}

export function makeFuzz(r: Rng) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const scalar = (): unknown =>
    pick([
      null,
      true,
      false,
      0,
      -1,
      1e308,
      -1e-308,
      3.5,
      NaN,
      '',
      'x',
      'user',
      '\u0000',
      '\ud800',
      'a'.repeat(1 + Math.floor(r() * 5000)),
      [],
      {},
      ...PROTOTYPE_KEYS,
    ]);
  /** A prototype member name, a tenth of the time, else one of `keys`: object keys that find Object.prototype. */
  const key = (keys: readonly string[]): string => (r() < 0.1 ? pick(PROTOTYPE_KEYS) : pick(keys));
  const value = (depth = 0, keys: readonly string[] = ['role', 'content', 'model', 'x', 'stream', 'n']): unknown => {
    if (depth > 3 || r() < 0.5) return scalar();
    if (r() < 0.5) return Array.from({ length: Math.floor(r() * 4) }, () => value(depth + 1, keys));
    // JSON.parse makes `__proto__` an own key (an object literal or fromEntries would not): the wire form is what a client sends.
    return JSON.parse(
      '{' +
        Array.from(
          { length: Math.floor(r() * 4) },
          () => `${JSON.stringify(key(keys))}:${JSON.stringify(value(depth + 1, keys)) ?? 'null'}`,
        ).join(',') +
        '}',
    ) as unknown;
  };
  const deep = (n: number) => '{"model":"m","messages":' + '['.repeat(n) + ']'.repeat(n) + '}';

  /** A body for a JSON endpoint; `plausible` makes a nearly-right one for that endpoint. */
  const body = (plausible: () => Record<string, unknown>): BodyCase => {
    const kind = r();
    if (kind < 0.45) return { contentType: 'application/json', body: JSON.stringify(plausible()) };
    if (kind < 0.55) return { contentType: 'application/json', body: JSON.stringify(value(0)) ?? 'null' };
    if (kind < 0.65) {
      const s = JSON.stringify(plausible());
      return { contentType: 'application/json', body: s.slice(0, Math.floor(r() * s.length)) }; // truncated JSON
    }
    if (kind < 0.72) {
      const s = Buffer.from(JSON.stringify({ model: 'no-such-model', messages: [{ role: 'user', content: 'XX' }] }));
      const i = s.indexOf('XX');
      s[i] = 0xc3; // invalid UTF-8 sequences inside a string
      s[i + 1] = 0x28;
      return { contentType: 'application/json', body: r() < 0.5 ? s : Buffer.from([0xff, 0xfe, 0x7b, 0x80, 0x7d]) };
    }
    if (kind < 0.8)
      return {
        contentType: pick([
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          undefined,
          'application/xml',
        ]),
        body: JSON.stringify(plausible()),
      };
    if (kind < 0.86) return { contentType: 'application/json', body: deep(pick([100, 5_000, 200_000])) };
    if (kind < 0.9)
      return {
        contentType: 'application/json',
        body: '{"model":"m","messages":[{"role":"user","content":"' + 'x'.repeat(5 * 1024 * 1024) + '"}]}',
      }; // over the body limit
    if (kind < 0.95)
      return {
        contentType: 'application/json',
        body: pick([
          '{"__proto__":{"x":1},"model":"m"}',
          '{"constructor":{"prototype":{"x":1}}}',
          '',
          ' ',
          'null',
          '[]',
          '"str"',
          '{"model":"m","model":"n"}',
          '{"a":1}}}}',
        ]),
      };
    return {
      contentType: 'application/json',
      body: JSON.stringify({ model: 'no-such-model', messages: Array.from({ length: 20_000 }, () => ({ role: 'user', content: 'x' })) }),
    };
  };

  /** A path parameter: plausible ids, empty, huge, encoded separators and NULs, non-ASCII. */
  const param = (): string =>
    pick([
      'gpu-1',
      'x',
      't_0001',
      'a'.repeat(65),
      'a'.repeat(5_000),
      '%00',
      '..%2F..%2Fetc%2Fpasswd',
      '%E2%82%AC',
      '%ff%fe',
      '%',
      '%25',
      '-1',
      '0',
      'null',
      'undefined',
      ...PROTOTYPE_KEYS,
      ' ',
      '%20',
      '%00%ED%A0%80',
      String(Math.floor(r() * 1e9)),
    ]);

  /** A query string: nothing, random keys and values, repeats, huge values. */
  const query = (keys: readonly string[]): string => {
    if (r() < 0.4) return '';
    const parts = Array.from(
      { length: 1 + Math.floor(r() * 4) },
      () =>
        `${encodeURIComponent(pick([...keys, 'x', ...PROTOTYPE_KEYS, '']))}=${pick(['', '1', '-5', '1e309', 'abc', 'a'.repeat(3_000), '%ff', '[]', '{}', 'true', String(Date.now()), ...PROTOTYPE_KEYS])}`,
    );
    return '?' + parts.join('&');
  };

  /** A header value (lane, idempotency key, request id, ...): plausible, empty, huge, or a prototype member name. */
  const headerValue = (plausible: readonly string[] = []): string =>
    pick([...plausible, '', ' ', 'x', 'a'.repeat(1 + Math.floor(r() * 4000)), ...PROTOTYPE_KEYS]);

  /** An Authorization header: no scheme, the wrong scheme, an empty, huge or malformed key, or a prototype member name as the key. */
  const bearer = (): string =>
    pick([
      'Bearer wrong',
      'Basic eDp5',
      'Bearer ',
      `Bearer ${'a'.repeat(8_000)}`,
      'Bearer sk-icp-000000000000-' + 'A'.repeat(43),
      ...PROTOTYPE_KEYS.map((k) => `Bearer ${k}`),
      'Bearer sk-icp-constructor-' + 'A'.repeat(43),
    ]);

  return { pick, key, scalar, value, body, param, query, headerValue, bearer };
}

/**
 * Sends one request. An oversized body is refused (413) from its Content-Length, before it is
 * read, and the server closes the connection: a client still writing the body sees EPIPE or a
 * reset instead of the answer. Such cases go over a raw socket that sends the headers, waits for
 * an early answer, and only then (if none came) the body. Event streams are cut after the headers.
 */
export async function send(
  base: string,
  method: string,
  path: string,
  c: BodyCase,
  headers: Record<string, string> = {},
): Promise<{ statusCode: number; text: string }> {
  const body = typeof c.body === 'string' ? Buffer.from(c.body) : c.body;
  const withBody = method !== 'GET' && method !== 'HEAD';
  if (!withBody || body.length < 1024 * 1024) {
    const res = await request(base + path, {
      method: method as 'GET',
      headers: { ...headers, ...(c.contentType && withBody ? { 'content-type': c.contentType } : {}) },
      body: withBody ? body : undefined,
      headersTimeout: 30_000,
    });
    if (String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
      res.body.destroy();
      return { statusCode: res.statusCode, text: '' };
    }
    return { statusCode: res.statusCode, text: await res.body.text() };
  }
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => undefined); // EPIPE while still writing: expected
    sock.on('close', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(raw);
      if (!m) return reject(new Error(`no HTTP answer to an oversized body: ${raw.slice(0, 100)}`));
      resolve({ statusCode: Number(m[1]), text: raw.slice(raw.indexOf('\r\n\r\n') + 4) });
    });
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    sock.write(
      `${method} ${path} HTTP/1.1\r\nhost: ${url.host}\r\n${extra}content-type: ${c.contentType}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`,
    );
    setTimeout(() => {
      if (chunks.length === 0 && !sock.destroyed) sock.end(body);
    }, 1_000);
  });
}

/** True when `text` is OpenAI's error shape: { error: { message, type, param, code } }. */
export function isOpenAIError(text: string): boolean {
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown; type?: unknown } };
    return typeof body.error?.message === 'string' && typeof body.error?.type === 'string' && 'param' in body.error && 'code' in body.error;
  } catch {
    return false;
  }
}

/** Resident set size of a process in bytes (Linux /proc), for the memory bound. */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

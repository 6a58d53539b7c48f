// What the cache keys on and what it may cache at all. Keys are SHA-256 of canonical JSON (sorted
// keys) of the scope (tenant, served model, operation) and the request minus the fields that do
// not change the answer (stream, stream_options, user, model as the client spelt it).
import { createHash } from 'node:crypto';
import { setOwn } from '../../common/own.ts';

export type Body = Record<string, unknown>;

/** Fields that change how the answer is delivered or logged, not what it is. */
const DELIVERY_FIELDS = new Set(['stream', 'stream_options', 'user', 'model']);

/** JSON with object keys sorted, so two spellings of one request hash alike. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  return `{${Object.entries(value)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`)
    .join(',')}}`;
}

export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export interface Scope {
  /** Tenant id, or a hash of the API key when tenancy is off, or 'anonymous'. */
  tenant: string;
  /** The served model (after alias and split resolution). */
  model: string;
  operation: string;
}

function answerFields(body: Body): Body {
  const out: Body = {};
  for (const [k, v] of Object.entries(body)) if (!DELIVERY_FIELDS.has(k) && v !== null && v !== undefined) setOwn<unknown>(out, k, v);
  return out;
}

/** The exact-cache key of a request. */
export function exactKey(scope: Scope, body: Body): string {
  return sha256(canonicalJson({ s: [scope.tenant, scope.model, scope.operation], b: answerFields(body) }));
}

export interface Eligibility {
  ok: boolean;
  /** Why not, for the bypass metric's reason label. */
  reason?: 'non_deterministic' | 'tools';
}

/** Only requests whose answer does not depend on chance or on the world may be cached. */
export function eligibility(body: Body, allow: { tools: boolean; nonDeterministic: boolean }): Eligibility {
  const deterministic = body.temperature === 0 || (typeof body.seed === 'number' && Number.isInteger(body.seed));
  if (!deterministic && !allow.nonDeterministic) return { ok: false, reason: 'non_deterministic' };
  // A tool call may act on the world (book, pay, send): replaying "call it" is only safe when the tenant says so.
  const hasTools = (Array.isArray(body.tools) && body.tools.length > 0) || (Array.isArray(body.functions) && body.functions.length > 0);
  if (hasTools && !allow.tools) return { ok: false, reason: 'tools' };
  return { ok: true };
}

/** `Cache-Control` request directives the cache honours. */
export function cacheControl(header: string | string[] | undefined): { noCache: boolean; noStore: boolean } {
  const v = (Array.isArray(header) ? header.join(',') : (header ?? '')).toLowerCase();
  const directives = new Set(v.split(',').map((d) => d.trim().split('=')[0]));
  return { noCache: directives.has('no-cache'), noStore: directives.has('no-store') };
}

export interface SemanticParts {
  /** The text embedded: the last user message (chat) or the prompt (completions). */
  text: string;
  /** Hash of the scope, the parameters and everything before that message (system prompt included). */
  scopeKey: string;
}

function textOf(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return undefined;
  // Text parts only; a message with an image or audio part is not compared by its words alone.
  const parts = content as { type?: unknown; text?: unknown }[];
  if (!parts.every((p) => p.type === 'text' && typeof p.text === 'string')) return undefined;
  return parts.map((p) => p.text as string).join('\n');
}

/** The semantic cache's view of a request, or undefined when it has no comparable last user message. */
export function semanticParts(scope: Scope, body: Body): SemanticParts | undefined {
  const rest = answerFields(body);
  let text: string | undefined;
  if (Array.isArray(body.messages)) {
    const messages = body.messages as { role?: unknown; content?: unknown }[];
    const last = messages.at(-1);
    // Only a conversation that ends with the user's turn: after a tool result the answer depends on it.
    if (!last || last.role !== 'user') return undefined;
    text = textOf(last.content);
    rest.messages = messages.slice(0, -1);
    rest.lastRole = canonicalJson({ ...last, content: undefined });
  } else if (
    typeof body.prompt === 'string' ||
    (Array.isArray(body.prompt) && typeof body.prompt[0] === 'string' && body.prompt.length === 1)
  ) {
    text = Array.isArray(body.prompt) ? (body.prompt[0] as string) : body.prompt;
    delete rest.prompt;
  }
  if (text === undefined || text.trim() === '') return undefined;
  return { text, scopeKey: sha256(canonicalJson({ s: [scope.tenant, scope.model, scope.operation], r: rest })) };
}

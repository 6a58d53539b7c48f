// Request-field hygiene for the generation and embedding routes (docs/request-fields.md): a body
// may carry OpenAI's own fields (openai/openai-openapi, CreateChatCompletionRequest,
// CreateCompletionRequest, CreateEmbeddingRequest) plus the engine extras the operator allows
// (`router.requestFields.extras`, per engine kind); anything else is a 400 naming the field, never
// a silent pass-through to vLLM/TGI. Media URLs in chat content parts are data: URLs unless their
// host is on `router.requestFields.mediaDomains` (the engine fetches them from inside the GPU pod).
import { z } from 'zod';
import { ApiError, errors } from '../../common/errors.ts';
import type { Operation } from '../../common/contracts.ts';
import { own } from '../../common/own.ts';

// OpenAI's request fields, from openai/openai-openapi (openapi.json, components.schemas).
export const OPENAI_CHAT_FIELDS: readonly string[] = [
  'messages',
  'model',
  'audio',
  'frequency_penalty',
  'function_call',
  'functions',
  'logit_bias',
  'logprobs',
  'max_completion_tokens',
  'max_tokens',
  'metadata',
  'modalities',
  'moderation',
  'n',
  'parallel_tool_calls',
  'prediction',
  'presence_penalty',
  'prompt_cache_key',
  'prompt_cache_options',
  'prompt_cache_retention',
  'reasoning_effort',
  'response_format',
  'safety_identifier',
  'seed',
  'service_tier',
  'stop',
  'store',
  'stream',
  'stream_options',
  'temperature',
  'tool_choice',
  'tools',
  'top_logprobs',
  'top_p',
  'user',
  'verbosity',
  'web_search_options',
];
export const OPENAI_COMPLETION_FIELDS: readonly string[] = [
  'model',
  'prompt',
  'best_of',
  'echo',
  'frequency_penalty',
  'logit_bias',
  'logprobs',
  'max_tokens',
  'n',
  'presence_penalty',
  'seed',
  'stop',
  'stream',
  'stream_options',
  'suffix',
  'temperature',
  'top_p',
  'user',
];
export const OPENAI_EMBEDDING_FIELDS: readonly string[] = ['input', 'model', 'encoding_format', 'dimensions', 'user'];

const INT_MESSAGE = 'expected an integer';
/** z.int() whose type error says "an integer" (zod itself reports an int field's wrong type as "expected number"). */
export const integer = () => z.int({ error: (iss) => (iss.code === 'invalid_type' ? INT_MESSAGE : undefined) });
const int = (min: number, max: number) => integer().min(min).max(max);
const tokenIds = z.array(int(0, 10_000_000)).max(1_024);
const kwargs = z
  .record(z.string().max(256), z.union([z.string().max(4_096), z.number(), z.boolean(), z.null()]))
  .refine((o) => Object.keys(o).length <= 64, { message: 'at most 64 entries' });
// Template arguments a client must not set through chat_template_kwargs: vLLM merges these kwargs
// into the template render, so `chat_template` there would be client Jinja run on the server.
const RESERVED_TEMPLATE_KWARGS = new Set(['chat_template', 'tokenize', 'messages', 'conversation', 'tools', 'documents']);
const templateKwargs = kwargs.superRefine((o, ctx) => {
  for (const k of Object.keys(o))
    if (RESERVED_TEMPLATE_KWARGS.has(k))
      ctx.addIssue({ code: 'custom', path: [k], message: `'${k}' may not be set through chat_template_kwargs` });
});

/**
 * Engine extras this router knows, with their types and bounds (vLLM:
 * vllm/entrypoints/openai/protocol.py, ChatCompletionRequest/CompletionRequest; TGI:
 * router/src/lib.rs, ChatRequest/CompletionRequest). An operator may list a name not here: it
 * then passes as any JSON value (the body limit bounds it).
 */
const EXTRA_TYPES = new Map<string, z.ZodType>([
  // vLLM sampling extras
  ['top_k', int(-1, 1_000_000)],
  ['min_p', z.number().min(0).max(1)],
  ['repetition_penalty', z.number().gt(0).max(10)],
  ['length_penalty', z.number().min(-10).max(10)],
  ['stop_token_ids', tokenIds],
  ['include_stop_str_in_output', z.boolean()],
  ['ignore_eos', z.boolean()],
  ['min_tokens', int(0, 10_000_000)],
  ['skip_special_tokens', z.boolean()],
  ['spaces_between_special_tokens', z.boolean()],
  ['truncate_prompt_tokens', int(1, 10_000_000)],
  ['prompt_logprobs', int(0, 20)],
  ['allowed_token_ids', tokenIds],
  ['bad_words', z.array(z.string().max(1_000)).max(256)],
  ['best_of', int(1, 1_000)],
  ['use_beam_search', z.boolean()],
  // vLLM structured output
  ['guided_json', z.union([z.string().max(1_000_000), z.record(z.string(), z.unknown())])],
  ['guided_regex', z.string().max(10_000)],
  ['guided_choice', z.array(z.string().max(10_000)).max(1_000)],
  ['guided_grammar', z.string().max(100_000)],
  ['guided_whitespace_pattern', z.string().max(1_000)],
  ['guided_decoding_backend', z.string().max(64)],
  ['structural_tag', z.string().max(1_000_000)],
  // vLLM chat-template and request extras
  ['echo', z.boolean()],
  ['add_generation_prompt', z.boolean()],
  ['continue_final_message', z.boolean()],
  ['add_special_tokens', z.boolean()],
  ['documents', z.array(z.record(z.string().max(256), z.string())).max(1_000)],
  ['chat_template', z.string().max(100_000)],
  ['chat_template_kwargs', templateKwargs],
  ['mm_processor_kwargs', kwargs],
  ['include_reasoning', z.boolean()],
  ['return_tokens_as_token_ids', z.boolean()],
  ['cache_salt', z.string().min(1).max(1_024)],
  ['priority', int(-1_000_000, 1_000_000)],
  ['request_id', z.string().max(256)],
  ['response_format', z.looseObject({ type: z.string().max(64) })],
  // TGI
  ['tool_prompt', z.string().max(100_000)],
]);

/**
 * The extras a fresh install passes: sampling and structured-output knobs whose cost the
 * request's own max_tokens bounds. Left out (opt-in, see docs/request-fields.md): best_of,
 * use_beam_search, length_penalty, ignore_eos, prompt_logprobs (multiply or force GPU work);
 * chat_template, mm_processor_kwargs (run client text through the server's template/processor);
 * logits_processors, vllm_xargs, kv_transfer_params, prompt_embeds (code paths or deserialisation
 * on the engine); guided_grammar, structural_tag, guided_decoding_backend (compile cost, operator
 * choice); priority, request_id (scheduling and log identity belong to the router).
 */
export const DEFAULT_EXTRAS = {
  vllm: [
    'top_k',
    'min_p',
    'repetition_penalty',
    'min_tokens',
    'stop_token_ids',
    'include_stop_str_in_output',
    'skip_special_tokens',
    'spaces_between_special_tokens',
    'truncate_prompt_tokens',
    'allowed_token_ids',
    'bad_words',
    'guided_json',
    'guided_regex',
    'guided_choice',
    'guided_whitespace_pattern',
    'echo',
    'add_generation_prompt',
    'continue_final_message',
    'add_special_tokens',
    'documents',
    'chat_template_kwargs',
    'include_reasoning',
    'return_tokens_as_token_ids',
    'cache_salt',
    'response_format',
  ],
  tgi: ['repetition_penalty', 'tool_prompt'],
} as const;

const fieldName = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,63}$/, 'a snake_case field name')
  .refine((n) => n !== '__proto__' && n !== 'constructor' && n !== 'prototype');
const domain = z
  .string()
  .min(1)
  .max(253)
  .regex(/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, 'a lower-case host name, optionally *.-prefixed');

export const requestFieldsConfigSchema = z.strictObject({
  /** Engine extras passed on, per engine kind, on top of the safe defaults (DEFAULT_EXTRAS), e.g. `vllm: [ignore_eos]`. */
  extras: z
    .strictObject({
      vllm: z.array(fieldName).max(256).default([]),
      tgi: z.array(fieldName).max(256).default([]),
    })
    .prefault({}),
  /** false: only the extras listed above pass, none of the defaults. */
  defaultExtras: z.boolean().default(true),
  /** Highest `n` (choices per request); every choice is a full generation. */
  maxN: integer().min(1).max(128).default(1),
  /** Highest `best_of` (completions; vLLM chat when listed in extras). */
  maxBestOf: integer().min(1).max(128).default(1),
  /** Hosts whose media URLs chat content parts may name (`*.example.com` for subdomains); data: URLs always pass. */
  mediaDomains: z.array(domain).max(1_000).default([]),
});

export type RequestFieldsConfig = z.infer<typeof requestFieldsConfigSchema>;
export type RequestFieldsConfigInput = z.input<typeof requestFieldsConfigSchema>;

/** What the pool knows about a model: its nodes' engine kinds and the largest context, when every node reports one. */
export interface ModelContext {
  engineKinds: Set<string>;
  /** Tokens; undefined when no node reports the model or one of them reports no context. */
  maxContext: number | undefined;
}

const describe = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' && Number.isInteger(v) ? 'integer' : typeof v;

const EXPECTED = new Map<string, string>([
  ['number', 'a number'],
  ['int', 'an integer'],
  ['string', 'a string'],
  ['boolean', 'a boolean'],
  ['array', 'an array'],
  ['object', 'an object'],
  ['record', 'an object'],
  ['null', 'null'],
]);

/** The value at `path` in `body`, and whether it is there at all (own properties only). */
function at(body: unknown, path: PropertyKey[]): { present: boolean; value: unknown } {
  let cur: unknown = body;
  for (const k of path) {
    if (typeof cur !== 'object' || cur === null || !Object.hasOwn(cur, k)) return { present: false, value: undefined };
    cur = Object.getOwnPropertyDescriptor(cur, k)?.value;
  }
  return { present: true, value: cur };
}

/** `messages.0.content` -> `messages[0].content`, as OpenAI names nested params. */
export function paramName(path: PropertyKey[]): string {
  let s = '';
  for (const k of path) s += typeof k === 'number' ? `[${k}]` : s ? `.${String(k)}` : String(k);
  return s;
}

/** The expected types a (possibly union) issue names, deduplicated, e.g. "a string or an array". */
function expectedOf(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'invalid_type')
    return [issue.message === INT_MESSAGE ? 'an integer' : (EXPECTED.get(issue.expected) ?? issue.expected)];
  if (issue.code === 'invalid_union') {
    const out: string[] = [];
    for (const branch of issue.errors)
      for (const i of branch) if (i.path.length === 0) for (const e of expectedOf(i)) if (!out.includes(e)) out.push(e);
    return out;
  }
  return [];
}

/**
 * A zod failure as OpenAI's 400: a missing field says so; a present one of the wrong type names the
 * field, the expected type and what came ("max_tokens: expected an integer, got string"); a value
 * out of bounds names the field and the bound.
 */
export function issueToError(issue: z.core.$ZodIssue, body: unknown, prefix: PropertyKey[] = []): ApiError {
  const path = [...prefix, ...issue.path];
  const param = paramName(path) || null;
  const got = at(body, path);
  if (!got.present && param && (issue.code === 'invalid_type' || issue.code === 'invalid_union'))
    return errors.invalidRequest(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
  const expected = expectedOf(issue).filter((e) => e !== 'null');
  if (expected.length && (issue.code === 'invalid_type' || issue.code === 'invalid_union'))
    return errors.invalidRequest(
      `${param ?? 'body'}: expected ${expected.join(' or ')}, got ${describe(got.value)}`,
      param,
      'invalid_type',
    );
  return errors.invalidRequest(`Invalid value for '${param ?? 'body'}': ${issue.message}`, param, 'invalid_value');
}

/** Parses `body` with `schema` or throws the 400 for its first issue. */
export function parseWith<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw errors.invalidRequest('The request body must be a JSON object.');
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  throw issueToError(r.error.issues[0]!, body);
}

export const unknownParameter = (name: string, where = '') =>
  errors.invalidRequest(`Unknown parameter: '${where}${name}'.`, `${where}${name}`, 'unknown_parameter');

/** Refuses any field of `body` not in `allowed` (the embeddings and rerank routes, no engine extras). */
export function allowOnly(body: unknown, allowed: readonly string[]): void {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
  for (const k of Object.keys(body)) if (!allowed.includes(k)) throw unknownParameter(k);
}

// Content part types of OpenAI's chat messages, plus vLLM's video_url/audio_url (checked like image_url).
const PART_TYPES = new Set(['text', 'image_url', 'input_audio', 'file', 'refusal', 'video_url', 'audio_url']);
const URL_PARTS = ['image_url', 'video_url', 'audio_url'] as const;

/** The request-field policy of one router: built from `router.requestFields` and the pool's view of a model. */
export class RequestFields {
  private readonly extras: Map<string, Set<string>>;

  constructor(
    private readonly cfg: RequestFieldsConfig,
    private readonly context: (model: string) => ModelContext,
  ) {
    const base = (kind: keyof typeof DEFAULT_EXTRAS) => (cfg.defaultExtras ? DEFAULT_EXTRAS[kind] : []);
    this.extras = new Map([
      ['vllm', new Set([...base('vllm'), ...cfg.extras.vllm])],
      ['tgi', new Set([...base('tgi'), ...cfg.extras.tgi])],
    ]);
  }

  /** Extras every engine kind serving the model takes (all configured kinds when none is known yet). */
  private allowedExtras(kinds: Set<string>): Set<string> {
    const lists = kinds.size ? [...kinds].map((k) => this.extras.get(k) ?? new Set<string>()) : [...this.extras.values()];
    const [first, ...rest] = lists;
    return new Set([...(first ?? [])].filter((n) => rest.every((l) => l.has(n))));
  }

  /**
   * Checks a parsed generation body for `model` (the served name): unknown fields, extras' types,
   * the risky knobs' bounds, media URLs and the model's context. Throws the 400.
   */
  check(operation: Operation, body: Record<string, unknown>, model: string, promptTokens: number): void {
    const ctx = this.context(model);
    const openai = operation === 'CHAT_COMPLETIONS' ? OPENAI_CHAT_FIELDS : OPENAI_COMPLETION_FIELDS;
    const extras = this.allowedExtras(ctx.engineKinds);
    for (const [name, value] of Object.entries(body)) {
      if (openai.includes(name)) continue;
      if (!extras.has(name)) throw unknownParameter(name);
      const type = EXTRA_TYPES.get(name);
      if (!type) continue;
      const r = type.safeParse(value);
      if (!r.success) throw issueToError(r.error.issues[0]!, body, [name]);
    }
    const maxTokens = requestedMaxTokens(body);
    const n = typeof body.n === 'number' ? body.n : 1;
    if (n > this.cfg.maxN) throw errors.invalidRequest(`n: at most ${this.cfg.maxN} on this server, got ${n}`, 'n', 'invalid_value');
    if (typeof body.best_of === 'number' && body.best_of > this.cfg.maxBestOf)
      throw errors.invalidRequest(`best_of: at most ${this.cfg.maxBestOf} on this server, got ${body.best_of}`, 'best_of', 'invalid_value');
    if (typeof body.min_tokens === 'number' && body.min_tokens > 0) {
      // min_tokens forces generation past EOS: only within a max the caller set (and pays for).
      if (maxTokens === undefined || body.min_tokens > maxTokens)
        throw errors.invalidRequest('min_tokens: must not exceed max_tokens (and max_tokens must be set).', 'min_tokens', 'invalid_value');
    }
    // ignore_eos (when allowed) generates to the limit: only to one the caller set.
    if (body.ignore_eos === true && maxTokens === undefined)
      throw errors.invalidRequest('ignore_eos: needs max_tokens (or max_completion_tokens).', 'ignore_eos', 'invalid_value');
    if (operation === 'CHAT_COMPLETIONS') this.checkMedia(body.messages);
    const maxParam = typeof body.max_completion_tokens === 'number' ? 'max_completion_tokens' : 'max_tokens';
    if (ctx.maxContext !== undefined) checkContext(ctx.maxContext, promptTokens, maxTokens, maxParam, operation);
  }

  private checkMedia(messages: unknown): void {
    if (!Array.isArray(messages)) return;
    for (const [i, m] of messages.entries()) {
      const content = (m as { content?: unknown } | null)?.content;
      if (!Array.isArray(content)) continue;
      for (const [j, part] of content.entries()) {
        const where = `messages[${i}].content[${j}]`;
        const type = (part as { type?: unknown } | null)?.type;
        if (typeof type !== 'string' || !PART_TYPES.has(type))
          throw errors.invalidRequest(`${where}.type: unsupported content part type '${String(type)}'.`, `${where}.type`, 'invalid_value');
        const p = part as Record<string, unknown>;
        // Every URL-bearing key is checked whatever the part's type: engines differ in which key they read.
        for (const key of URL_PARTS) {
          if (!Object.hasOwn(p, key) && type !== key) continue;
          const inner = Object.hasOwn(p, key) ? p[key] : undefined;
          const url =
            typeof inner === 'string'
              ? inner
              : typeof inner === 'object' && inner !== null && Object.hasOwn(inner, 'url')
                ? (inner as { url: unknown }).url
                : undefined;
          const param = typeof inner === 'string' ? `${where}.${key}` : `${where}.${key}.url`;
          if (typeof url !== 'string')
            throw errors.invalidRequest(`${param}: expected a string, got ${describe(url)}`, param, 'invalid_type');
          this.checkUrl(url, param);
        }
        const inner = own(p, type);
        if (type === 'file' && typeof inner === 'object' && inner !== null) {
          const f = inner as { file_data?: unknown; file_url?: unknown };
          // file_data is base64 or a data: URL; anything with a scheme is a URL the engine would fetch.
          for (const k of ['file_data', 'file_url'] as const) {
            const v = Object.hasOwn(f, k) ? f[k] : undefined;
            if (typeof v === 'string' && (k === 'file_url' || /^[a-z][a-z0-9+.-]*:/i.test(v))) this.checkUrl(v, `${where}.file.${k}`);
          }
        }
      }
    }
  }

  private checkUrl(raw: string, param: string): void {
    if (/^data:/i.test(raw)) return;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw errors.invalidRequest(`${param}: not a valid URL.`, param, 'invalid_media_url');
    }
    const host = url.hostname.toLowerCase();
    const ok =
      (url.protocol === 'https:' || url.protocol === 'http:') &&
      url.username === '' &&
      url.password === '' &&
      this.cfg.mediaDomains.some((d) => (d.startsWith('*.') ? host.endsWith(d.slice(1)) && host.length > d.length - 1 : host === d));
    if (!ok)
      throw errors.invalidRequest(
        `${param}: media URLs must be data: URLs${this.cfg.mediaDomains.length ? ' or name an allowed domain' : ''}; '${host || url.protocol}' is not allowed.`,
        param,
        'invalid_media_url',
      );
  }
}

/** `max_completion_tokens` (chat's current name) or `max_tokens`, when set. */
export function requestedMaxTokens(body: Record<string, unknown>): number | undefined {
  const v = typeof body.max_completion_tokens === 'number' ? body.max_completion_tokens : body.max_tokens;
  return typeof v === 'number' ? v : undefined;
}

/**
 * OpenAI's `context_length_exceeded` (its wording) when the estimated prompt plus the requested
 * completion cannot fit the largest context any node serving the model has: a 400, so neither the
 * router, an SDK nor the fallback chain retries it. A max_tokens above the context is refused the
 * same way (never clamped: the caller asked for, and budgets for, that many tokens).
 */
function checkContext(
  maxContext: number,
  promptTokens: number,
  maxTokens: number | undefined,
  maxTokensParam: string,
  operation: Operation,
): void {
  const completion = maxTokens ?? 1;
  if (promptTokens + completion <= maxContext) return;
  const where = operation === 'CHAT_COMPLETIONS' ? 'messages' : 'prompt';
  throw new ApiError(
    400,
    `This model's maximum context length is ${maxContext} tokens. However, you requested ${promptTokens + completion} tokens ` +
      `(${promptTokens} in the ${where}, ${completion} in the completion). Please reduce the length of the ${where} or completion.`,
    'invalid_request_error',
    'context_length_exceeded',
    maxTokens !== undefined && maxTokens >= maxContext ? maxTokensParam : where,
  );
}

// OpenAI chat completions <-> Anthropic Messages, both directions and streaming. Field names and
// event types follow Anthropic's API reference and its TypeScript SDK (src/resources/messages):
// `system` is a top-level field, `max_tokens` is required, `stop_sequences`, tools carry
// `input_schema`, tool calls are `tool_use` blocks, tool results are `tool_result` blocks in a
// user turn; the stream is message_start, content_block_start/delta/stop (text_delta,
// input_json_delta), message_delta (stop_reason + cumulative usage), message_stop, ping, error.
import { ApiError, errors } from '../../../common/errors.ts';
import { own } from '../../../common/own.ts';

type Json = Record<string, unknown>;

export interface TranslateOptions {
  model: string;
  /** Anthropic requires max_tokens; used when the client sent none. */
  defaultMaxTokens: number;
}

// ---- request: OpenAI -> Anthropic ----

export function toAnthropicRequest(body: Json, o: TranslateOptions): Json {
  const system: string[] = [];
  const messages: { role: 'user' | 'assistant'; content: Json[] }[] = [];
  const push = (role: 'user' | 'assistant', blocks: Json[]) => {
    if (blocks.length === 0) return;
    const last = messages[messages.length - 1];
    // Consecutive turns of one role merge (tool results after each other, system-split users).
    if (last && last.role === role) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  };
  for (const raw of (body.messages as Json[] | undefined) ?? []) {
    const m = raw as {
      role: string;
      content?: unknown;
      tool_calls?: { id: string; function: { name: string; arguments: string } }[];
      tool_call_id?: string;
    };
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(textOf(m.content));
        break;
      case 'user':
        push('user', userBlocks(m.content));
        break;
      case 'assistant': {
        const blocks: Json[] = [];
        const text = textOf(m.content);
        if (text) blocks.push({ type: 'text', text });
        for (const tc of m.tool_calls ?? [])
          blocks.push({ type: 'tool_use', id: tc.id, name: tc.function.name, input: parseArgs(tc.function.arguments) });
        push('assistant', blocks);
        break;
      }
      case 'tool':
        push('user', [{ type: 'tool_result', tool_use_id: m.tool_call_id, content: textOf(m.content) }]);
        break;
      default:
        throw errors.invalidRequest(`Unsupported message role '${m.role}' for this model.`, 'messages');
    }
  }
  const out: Json = {
    model: o.model,
    messages,
    max_tokens: (body.max_completion_tokens as number | undefined) ?? (body.max_tokens as number | undefined) ?? o.defaultMaxTokens,
  };
  if (system.length) out.system = system.join('\n\n');
  if (body.stop !== undefined && body.stop !== null) out.stop_sequences = Array.isArray(body.stop) ? body.stop : [body.stop];
  // OpenAI's temperature runs 0..2, Anthropic's 0..1.
  if (typeof body.temperature === 'number') out.temperature = Math.min(1, body.temperature);
  if (typeof body.top_p === 'number') out.top_p = body.top_p;
  if (body.stream === true) out.stream = true;
  if (typeof body.user === 'string') out.metadata = { user_id: body.user };
  const tools = body.tools as { type: string; function: { name: string; description?: string; parameters?: Json } }[] | undefined;
  if (tools?.length) {
    out.tools = tools
      .filter((t) => t.type === 'function')
      .map((t) => ({
        name: t.function.name,
        ...(t.function.description ? { description: t.function.description } : {}),
        input_schema: t.function.parameters ?? { type: 'object', properties: {} },
      }));
    const choice = toolChoice(body.tool_choice, body.parallel_tool_calls === false);
    if (choice) out.tool_choice = choice;
  }
  return out;
}

function toolChoice(c: unknown, disableParallel: boolean): Json | undefined {
  const p = disableParallel ? { disable_parallel_tool_use: true } : {};
  if (c === undefined || c === null || c === 'auto') return disableParallel ? { type: 'auto', ...p } : undefined;
  if (c === 'none') return { type: 'none' };
  if (c === 'required') return { type: 'any', ...p };
  const named = c as { type?: string; function?: { name?: string } };
  if (named.function?.name) return { type: 'tool', name: named.function.name, ...p };
  return undefined;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content.map((p) => ((p as { type?: string; text?: string }).type === 'text' ? (p as { text: string }).text : '')).join('');
  return '';
}

function userBlocks(content: unknown): Json[] {
  if (typeof content === 'string') return content ? [{ type: 'text', text: content }] : [];
  if (!Array.isArray(content)) return [];
  return content.flatMap((part): Json[] => {
    const p = part as { type: string; text?: string; image_url?: { url: string } };
    if (p.type === 'text') return [{ type: 'text', text: p.text ?? '' }];
    if (p.type === 'image_url' && p.image_url) {
      const m = /^data:(image\/[a-z]+);base64,(.*)$/s.exec(p.image_url.url);
      return [{ type: 'image', source: m ? { type: 'base64', media_type: m[1], data: m[2] } : { type: 'url', url: p.image_url.url } }];
    }
    throw errors.invalidRequest(`Unsupported content part '${p.type}' for this model.`, 'messages');
  });
}

function parseArgs(s: string): unknown {
  try {
    return s ? JSON.parse(s) : {};
  } catch {
    return {};
  }
}

// ---- response: Anthropic -> OpenAI ----

const FINISH: Record<string, string> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  pause_turn: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
};

export function finishReason(stop: string | null | undefined): string | null {
  if (stop === null || stop === undefined) return null;
  return own(FINISH, stop) ?? 'stop';
}

interface AnthropicUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

export function openAIUsage(u: AnthropicUsage) {
  const cached = u.cache_read_input_tokens ?? 0;
  const prompt = (u.input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0) + cached;
  const completion = u.output_tokens ?? 0;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cached },
  };
}

export function toOpenAIResponse(msg: Json, created = Math.floor(Date.now() / 1000)): Json {
  const content = (msg.content as { type: string; text?: string; id?: string; name?: string; input?: unknown }[] | undefined) ?? [];
  const text = content
    .filter((b) => b.type === 'text')
    .map((b) => b.text ?? '')
    .join('');
  const toolCalls = content
    .filter((b) => b.type === 'tool_use')
    .map((b) => ({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } }));
  return {
    id: `chatcmpl-${String(msg.id ?? '')}`,
    object: 'chat.completion',
    created,
    model: msg.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text || (toolCalls.length ? null : ''),
          refusal: null,
          ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
        },
        logprobs: null,
        finish_reason: finishReason(msg.stop_reason as string | null),
      },
    ],
    usage: openAIUsage((msg.usage as AnthropicUsage | undefined) ?? {}),
    system_fingerprint: null,
  };
}

/** Anthropic's `{"type":"error","error":{type,message}}` -> what an OpenAI client expects. */
export function anthropicErrorToOpenAI(status: number, text: string): { message: string; type: string; code: string | null; param: null } {
  let type = 'api_error';
  let message = `HTTP ${status}`;
  try {
    const j = JSON.parse(text) as { error?: { type?: string; message?: string } };
    if (j.error?.type) type = j.error.type;
    if (typeof j.error?.message === 'string') message = j.error.message;
  } catch {
    if (text) message = text.slice(0, 200);
  }
  const map: Record<string, [string, string | null]> = {
    invalid_request_error: ['invalid_request_error', null],
    request_too_large: ['invalid_request_error', 'request_too_large'],
    authentication_error: ['authentication_error', 'invalid_api_key'],
    permission_error: ['permission_error', null],
    not_found_error: ['invalid_request_error', 'model_not_found'],
    rate_limit_error: ['rate_limit_error', 'rate_limit_exceeded'],
    overloaded_error: ['server_error', 'overloaded'],
    api_error: ['server_error', null],
  };
  const [oType, code] = own(map, type) ?? ['server_error', null];
  return { message, type: oType, code, param: null };
}

// ---- stream: Anthropic events -> OpenAI chunks ----

export interface StreamError {
  type: string;
  message: string;
}

/**
 * Turns Anthropic stream events into OpenAI chat.completion.chunk JSON strings, one event at a
 * time. Tool-use blocks become `tool_calls` deltas with their own index (the first carries id and
 * name, then `input_json_delta` pieces become argument pieces). Blocks OpenAI has no shape for
 * (thinking, server tools) are left out.
 */
export class AnthropicStreamTranslator {
  private id = '';
  private model: string;
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly tools = new Map<number, number>();
  private usageIn: AnthropicUsage = {};
  private outputTokens = 0;
  stopped = false;
  error: StreamError | undefined;

  constructor(model: string) {
    this.model = model;
  }

  get usage() {
    return openAIUsage({ ...this.usageIn, output_tokens: this.outputTokens });
  }

  /** One parsed event in; zero or more chunk JSON strings out. */
  push(e: Json): string[] {
    switch (e.type) {
      case 'message_start': {
        const m = e.message as { id?: string; model?: string; usage?: AnthropicUsage };
        this.id = `chatcmpl-${m.id ?? ''}`;
        if (m.model) this.model = m.model;
        this.usageIn = m.usage ?? {};
        this.outputTokens = m.usage?.output_tokens ?? 0;
        return [this.chunk({ role: 'assistant', content: '' })];
      }
      case 'content_block_start': {
        const b = e.content_block as { type: string; text?: string; id?: string; name?: string };
        if (b.type === 'text') return b.text ? [this.chunk({ content: b.text })] : [];
        if (b.type === 'tool_use') {
          const index = this.tools.size;
          this.tools.set(e.index as number, index);
          return [this.chunk({ tool_calls: [{ index, id: b.id, type: 'function', function: { name: b.name, arguments: '' } }] })];
        }
        return [];
      }
      case 'content_block_delta': {
        const d = e.delta as { type: string; text?: string; partial_json?: string };
        if (d.type === 'text_delta') return d.text ? [this.chunk({ content: d.text })] : [];
        if (d.type === 'input_json_delta') {
          const index = this.tools.get(e.index as number);
          if (index === undefined || !d.partial_json) return [];
          return [this.chunk({ tool_calls: [{ index, function: { arguments: d.partial_json } }] })];
        }
        return [];
      }
      case 'message_delta': {
        const d = e.delta as { stop_reason?: string | null };
        const u = e.usage as AnthropicUsage | undefined;
        if (u) {
          // message_delta usage is cumulative; input fields may repeat the start's.
          if (u.output_tokens !== undefined && u.output_tokens !== null) this.outputTokens = u.output_tokens;
          for (const k of ['input_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'] as const)
            if (typeof u[k] === 'number') this.usageIn[k] = u[k];
        }
        return [this.chunk({}, finishReason(d.stop_reason ?? 'end_turn'))];
      }
      case 'message_stop':
        this.stopped = true;
        return [
          JSON.stringify({
            id: this.id,
            object: 'chat.completion.chunk',
            created: this.created,
            model: this.model,
            choices: [],
            usage: this.usage,
          }),
        ];
      case 'error': {
        const err = e.error as { type?: string; message?: string } | undefined;
        this.error = { type: err?.type ?? 'api_error', message: err?.message ?? 'error' };
        return [];
      }
      default: // ping, content_block_stop, and types added later
        return [];
    }
  }

  private chunk(delta: Json, finish: string | null = null): string {
    return JSON.stringify({
      id: this.id,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.model,
      system_fingerprint: null,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    });
  }
}

export function isClientFault(e: unknown): e is ApiError {
  return e instanceof ApiError && e.status < 500;
}

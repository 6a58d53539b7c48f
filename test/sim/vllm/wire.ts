// vLLM's OpenAI-compatible wire shapes: request bodies (zod) and response/chunk builders.
// Shapes checked against vllm/entrypoints/openai/{engine/protocol.py, serving_chat.py} and the
// captured stream test/fixtures/vllm/chat-stream-include-usage.vllm-0.24.0-*.sse:
// - chunks are dumped with exclude_unset, so ordinary chunks carry NO "usage" key at all;
// - the include_usage chunk has "choices": [] and "usage" (dumped with exclude_none);
// - the first chunk carries delta {role, content: ""} plus prompt_token_ids/prompt_text null;
// - token chunks carry "token_ids": null per choice; the finishing chunk adds "stop_reason";
// - errors are {"error": {"message", "type", "param", "code": <int>}}; a stream that fails
//   sends one such object as a data event, then "data: [DONE]".
import { randomBytes } from 'node:crypto';
import { z } from 'zod';

const nullish = <T extends z.ZodType>(t: T) => t.nullable().optional();

const contentPart = z.looseObject({ type: z.string(), text: z.string().optional() });
const chatMessage = z.looseObject({
  role: z.string(),
  content: nullish(z.union([z.string(), z.array(contentPart)])),
});
const streamOptions = z.looseObject({ include_usage: nullish(z.boolean()), continuous_usage_stats: nullish(z.boolean()) });
const common = {
  model: z.string(),
  stream: nullish(z.boolean()),
  stream_options: nullish(streamOptions),
  max_tokens: nullish(z.int().min(1)),
  // accepted and ignored by the simulator (documented in README of the sim): n, stop, sampling
  n: nullish(z.int().min(1)),
  stop: nullish(z.union([z.string(), z.array(z.string())])),
  temperature: nullish(z.number()),
  top_p: nullish(z.number()),
  seed: nullish(z.int()),
};

export const chatRequestSchema = z.looseObject({
  ...common,
  messages: z.array(chatMessage).min(1),
  max_completion_tokens: nullish(z.int().min(1)),
});
export const completionRequestSchema = z.looseObject({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).min(1)]),
});
export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type CompletionRequest = z.infer<typeof completionRequestSchema>;

export type ErrorType = 'BadRequestError' | 'NotFoundError' | 'InternalServerError';
export function errorBody(message: string, type: ErrorType, code: number, param: string | null = null) {
  return { error: { message, type, param, code } };
}

/** vLLM's random request-id suffix: 16 hex digits in current releases (see the capture). */
export function requestId(prefix: 'chatcmpl' | 'cmpl'): string {
  return `${prefix}-${randomBytes(8).toString('hex')}`;
}

export interface Usage {
  prompt_tokens: number;
  total_tokens: number;
  completion_tokens: number;
  prompt_tokens_details: { cached_tokens: number } | null;
}
export function usage(prompt: number, completion: number, cached: number | null): Usage {
  return {
    prompt_tokens: prompt,
    total_tokens: prompt + completion,
    completion_tokens: completion,
    prompt_tokens_details: cached === null ? null : { cached_tokens: cached },
  };
}

export interface ChunkHead {
  id: string;
  created: number;
  model: string;
}

export function chatFirstChunk(h: ChunkHead) {
  return {
    id: h.id,
    object: 'chat.completion.chunk',
    created: h.created,
    model: h.model,
    choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
    prompt_token_ids: null,
    prompt_text: null,
  };
}
export function chatTokenChunk(h: ChunkHead, text: string, finish: 'stop' | 'length' | null) {
  const choice =
    finish === null
      ? { index: 0, delta: { content: text }, logprobs: null, finish_reason: null, token_ids: null }
      : {
          index: 0,
          delta: text === '' ? {} : { content: text },
          logprobs: null,
          finish_reason: finish,
          stop_reason: null,
          token_ids: null,
        };
  return { id: h.id, object: 'chat.completion.chunk', created: h.created, model: h.model, choices: [choice] };
}
export function completionTokenChunk(h: ChunkHead, text: string, finish: 'stop' | 'length' | null) {
  return {
    id: h.id,
    object: 'text_completion',
    created: h.created,
    model: h.model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish, stop_reason: null, token_ids: null }],
  };
}
export function usageChunk(h: ChunkHead, object: 'chat.completion.chunk' | 'text_completion', u: Usage, fingerprint: string) {
  return { id: h.id, object, created: h.created, model: h.model, choices: [], usage: u, system_fingerprint: fingerprint };
}

export function chatResponse(h: ChunkHead, text: string, finish: 'stop' | 'length', u: Usage) {
  return {
    id: h.id,
    object: 'chat.completion',
    created: h.created,
    model: h.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text,
          refusal: null,
          annotations: null,
          audio: null,
          function_call: null,
          tool_calls: [],
          reasoning_content: null,
        },
        logprobs: null,
        finish_reason: finish,
        stop_reason: null,
        token_ids: null,
      },
    ],
    service_tier: null,
    system_fingerprint: null,
    usage: u,
    prompt_logprobs: null,
    prompt_token_ids: null,
    kv_transfer_params: null,
  };
}
export function completionResponse(h: ChunkHead, text: string, finish: 'stop' | 'length', u: Usage) {
  return {
    id: h.id,
    object: 'text_completion',
    created: h.created,
    model: h.model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish, stop_reason: null, token_ids: null, prompt_logprobs: null }],
    service_tier: null,
    system_fingerprint: null,
    usage: u,
    kv_transfer_params: null,
  };
}

export function modelList(model: string, maxModelLen: number, created: number) {
  return {
    object: 'list',
    data: [
      {
        id: model,
        object: 'model',
        created,
        owned_by: 'vllm',
        root: model,
        parent: null,
        max_model_len: maxModelLen,
        permission: [
          {
            id: `modelperm-${randomBytes(8).toString('hex')}`,
            object: 'model_permission',
            created,
            allow_create_engine: false,
            allow_sampling: true,
            allow_logprobs: true,
            allow_search_indices: false,
            allow_view: true,
            allow_fine_tuning: false,
            organization: '*',
            group: null,
            is_blocking: false,
          },
        ],
      },
    ],
  };
}

/** The chat prompt as text (what a template would render) and its estimated token count. */
export function chatPromptText(messages: ChatRequest['messages']): string {
  return messages
    .map((m) => {
      const c = m.content;
      const text = typeof c === 'string' ? c : Array.isArray(c) ? c.map((p) => p.text ?? '').join('') : '';
      return `<|${m.role}|>${text}`;
    })
    .join('\n');
}

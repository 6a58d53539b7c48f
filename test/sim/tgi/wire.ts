// TGI's wire shapes for the simulator: request bodies (zod) and response/event builders.
// Checked against huggingface/text-generation-inference at db931fcf (router/src/lib.rs: StreamResponse,
// Token, StreamDetails, GenerateResponse, Details, ChatCompletionChunk, CompletionType, Chunk,
// CompletionFinal, Info, ErrorResponse; router/src/server.rs; router/src/chat.rs) and the captures in
// test/fixtures/tgi (see its SOURCES.md):
// - /generate_stream events: {index, token:{id,text,logprob,special}, generated_text, details};
//   generated_text and details are null except on the last event; top_tokens is skipped when empty;
// - OpenAI routes: "id": "", system_fingerprint "<version>-native", chat deltas repeat
//   role "assistant", every chunk has "usage": null, the finishing token chunk carries finish_reason
//   (no separate empty chunk), then the include_usage chunk (choices []) when asked, then [DONE];
// - completions chunks: finish_reason "" until the last one, which also carries usage;
// - errors: {"error": "...", "error_type": "..."}; inside OpenAI streams {"error":{"message","http_status_code":422}}.
import { z } from 'zod';

const nullish = <T extends z.ZodType>(t: T) => t.nullable().optional();

export const generateParametersSchema = z.looseObject({
  max_new_tokens: nullish(z.int().min(0)),
  details: nullish(z.boolean()),
  decoder_input_details: nullish(z.boolean()),
  do_sample: nullish(z.boolean()),
  temperature: nullish(z.number().positive()),
  top_p: nullish(z.number()),
  seed: nullish(z.int().min(0)),
  stop: nullish(z.array(z.string())),
  return_full_text: nullish(z.boolean()),
});
export const generateRequestSchema = z.looseObject({
  inputs: z.string(),
  parameters: nullish(generateParametersSchema),
  stream: nullish(z.boolean()),
});

const contentPart = z.looseObject({ type: z.string(), text: z.string().optional() });
export const chatRequestSchema = z.looseObject({
  model: nullish(z.string()),
  messages: z.array(z.looseObject({ role: z.string(), content: nullish(z.union([z.string(), z.array(contentPart)])) })).min(1),
  max_tokens: nullish(z.int().min(0)),
  max_completion_tokens: nullish(z.int().min(0)),
  stream: nullish(z.boolean()),
  stream_options: nullish(z.looseObject({ include_usage: nullish(z.boolean()) })),
  temperature: nullish(z.number()),
  seed: nullish(z.int()),
});
export const completionRequestSchema = z.looseObject({
  model: nullish(z.string()),
  prompt: z.union([z.string(), z.array(z.string()).min(1)]),
  max_tokens: nullish(z.int().min(0)),
  stream: nullish(z.boolean()),
  suffix: nullish(z.string()),
  temperature: nullish(z.number()),
  seed: nullish(z.int()),
});

export type TgiFinishReason = 'length' | 'eos_token' | 'stop_sequence';
export interface TgiToken {
  id: number;
  text: string;
  logprob: number;
  special: boolean;
}
export const EOS_TOKEN: TgiToken = { id: 2, text: '</s>', logprob: -0.0001, special: true };

export function errorBody(error: string, errorType: string) {
  return { error, error_type: errorType };
}
/** InferError::into_openai_event */
export function openAiStreamError(message: string) {
  return { error: { message, http_status_code: 422 } };
}

export function streamResponse(
  index: number,
  token: TgiToken,
  final: { text: string; finish: TgiFinishReason; generated: number; inputLength: number } | null,
  details: boolean,
) {
  return {
    index,
    token,
    generated_text: final ? final.text : null,
    details:
      final && details
        ? { finish_reason: final.finish, generated_tokens: final.generated, seed: null, input_length: final.inputLength }
        : null,
  };
}

export function generateResponse(text: string, finish: TgiFinishReason, tokens: TgiToken[], details: boolean) {
  return {
    generated_text: text,
    ...(details ? { details: { finish_reason: finish, generated_tokens: tokens.length, seed: null, prefill: [], tokens } } : {}),
  };
}

export interface Head {
  created: number;
  model: string;
  fingerprint: string;
}
/** FinishReason::format(true): chat says "stop" for eos_token only. */
const chatFinish = (f: TgiFinishReason) => (f === 'eos_token' ? 'stop' : f);

export function chatChunk(h: Head, token: TgiToken, finish: TgiFinishReason | null) {
  return {
    object: 'chat.completion.chunk',
    id: '',
    created: h.created,
    model: h.model,
    system_fingerprint: h.fingerprint,
    choices: [
      {
        index: 0,
        delta: { role: 'assistant', content: token.special ? '' : token.text },
        logprobs: null,
        finish_reason: finish ? chatFinish(finish) : null,
      },
    ],
    usage: null,
  };
}
export function usage(prompt: number, completion: number) {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
export function chatUsageChunk(h: Head, prompt: number, completion: number) {
  return {
    object: 'chat.completion.chunk',
    id: '',
    created: h.created,
    model: h.model,
    system_fingerprint: h.fingerprint,
    choices: [],
    usage: usage(prompt, completion),
  };
}
export function chatCompletion(h: Head, text: string, finish: TgiFinishReason, prompt: number, completion: number) {
  return {
    object: 'chat.completion',
    id: '',
    created: h.created,
    model: h.model,
    system_fingerprint: h.fingerprint,
    choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: chatFinish(finish) }],
    usage: usage(prompt, completion),
  };
}
/** Completion::Chunk / Completion::Final: the token text as is (special tokens included). */
export function completionChunk(h: Head, token: TgiToken, final: { finish: TgiFinishReason; prompt: number; completion: number } | null) {
  const base = {
    object: 'text_completion',
    id: '',
    created: h.created,
    model: h.model,
    system_fingerprint: h.fingerprint,
    choices: [{ finish_reason: final ? final.finish : '', index: 0, logprobs: null, text: token.text }],
  };
  return final ? { ...base, usage: usage(final.prompt, final.completion) } : base;
}
export function completionFinal(h: Head, text: string, finish: TgiFinishReason, prompt: number, completion: number) {
  return {
    object: 'text_completion',
    id: '',
    created: h.created,
    model: h.model,
    system_fingerprint: h.fingerprint,
    choices: [{ finish_reason: finish, index: 0, logprobs: null, text }],
    usage: usage(prompt, completion),
  };
}

export interface InfoOptions {
  model: string;
  maxInputTokens: number;
  maxTotalTokens: number;
  maxConcurrentRequests: number;
  version: string;
}
export function info(o: InfoOptions) {
  return {
    model_id: o.model,
    model_sha: null,
    model_pipeline_tag: 'text-generation',
    max_concurrent_requests: o.maxConcurrentRequests,
    max_best_of: 2,
    max_stop_sequences: 4,
    max_input_tokens: o.maxInputTokens,
    max_total_tokens: o.maxTotalTokens,
    validation_workers: 2,
    max_client_batch_size: 4,
    router: 'text-generation-router',
    version: o.version,
    sha: null,
    docker_label: null,
  };
}
/** openai_get_model_info */
export function modelList(model: string) {
  return { object: 'list', data: [{ id: model, object: 'model', created: 0, owned_by: model }] };
}

// Tokens charged against TPM at admission: the prompt's size plus what the request may generate.
// The prompt estimate is ~4 characters per token (OpenAI's rule of thumb for English; the real
// count replaces it when the request settles), so a misestimate is corrected, never kept.

export const CHARS_PER_TOKEN = 4;

export function estimatePromptTokens(body: unknown): number {
  if (typeof body !== 'object' || body === null) return 0;
  const b = body as { messages?: unknown; prompt?: unknown };
  let chars = 0;
  const add = (v: unknown) => {
    if (typeof v === 'string') chars += v.length;
    else if (Array.isArray(v)) for (const x of v) add(x);
    else if (typeof v === 'object' && v !== null) {
      const o = v as { content?: unknown; text?: unknown };
      add(o.content);
      add(o.text);
    }
  };
  add(b.messages);
  add(b.prompt);
  return Math.ceil(chars / CHARS_PER_TOKEN);
}

export function estimateCompletionTokens(body: unknown, fallback: number): number {
  const b = (body ?? {}) as { max_tokens?: unknown; max_completion_tokens?: unknown };
  const v = typeof b.max_completion_tokens === 'number' ? b.max_completion_tokens : b.max_tokens;
  return typeof v === 'number' && v > 0 ? v : fallback;
}

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

/** The texts an embeddings or rerank request spends tokens on (nothing is generated), by route. */
export function embeddingTexts(
  route: string | undefined,
  body: unknown,
): { model?: string; texts: string[]; inputType: 'query' | 'passage' } | undefined {
  const b = (body ?? {}) as {
    model?: unknown;
    input?: unknown;
    input_type?: unknown;
    query?: unknown;
    documents?: unknown;
    texts?: unknown;
  };
  const model = typeof b.model === 'string' ? b.model : undefined;
  const strings = (v: unknown): string[] =>
    typeof v === 'string'
      ? [v]
      : Array.isArray(v)
        ? v.flatMap((x) =>
            typeof x === 'string' ? [x] : typeof (x as { text?: unknown })?.text === 'string' ? [(x as { text: string }).text] : [],
          )
        : [];
  if (route === '/v1/embeddings') return { model, texts: strings(b.input), inputType: b.input_type === 'query' ? 'query' : 'passage' };
  if (route === '/v1/rerank' || route === '/rerank')
    return { model, texts: [...strings(b.query), ...strings(b.documents), ...strings(b.texts)], inputType: 'passage' };
  return undefined;
}

/** The ~4 characters per token estimate over plain texts. */
export function estimateTextTokens(texts: string[]): number {
  return Math.ceil(texts.reduce((n, t) => n + t.length, 0) / CHARS_PER_TOKEN);
}

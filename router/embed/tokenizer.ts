// Wraps @huggingface/tokenizers. That library neither pads nor truncates (and treats an empty
// text_pair as no pair), so we only ask it for the content tokens and assemble the special tokens
// ourselves from the model's own template, learned once by probing it. That keeps BERT
// ([CLS] a [SEP] b [SEP]) and RoBERTa/XLM-R (<s> a </s></s> b </s>) layouts both right.
import { readFile, access } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

export interface Encoded {
  ids: number[];
  typeIds: number[];
}

/** Special tokens around the content, with their type ids. */
interface Piece {
  ids: number[];
  typeIds: number[];
}
interface SingleTemplate {
  prefix: Piece;
  suffix: Piece;
  contentType: number;
}
interface PairTemplate {
  prefix: Piece;
  middle: Piece;
  suffix: Piece;
  aType: number;
  bType: number;
}

export class TooLongError extends Error {
  constructor(
    readonly tokens: number,
    readonly maxLength: number,
  ) {
    super(`input has ${tokens} tokens, more than the model's maximum of ${maxLength}`);
  }
}

export class TextTokenizer {
  private constructor(
    private readonly tok: Tokenizer,
    private readonly single: SingleTemplate,
    private readonly pairTemplate: PairTemplate | null,
  ) {}

  static async load(tokenizerPath: string, configPath?: string): Promise<TextTokenizer> {
    const json: unknown = JSON.parse(await readFile(tokenizerPath, 'utf8'));
    let cfgPath = configPath;
    if (!cfgPath) {
      const beside = join(dirname(tokenizerPath), 'tokenizer_config.json');
      cfgPath = await access(beside).then(
        () => beside,
        () => undefined,
      );
    }
    // The config supplies unk_token for WordLevel models loaded through the library's fallback.
    const cfg: unknown = cfgPath ? JSON.parse(await readFile(cfgPath, 'utf8')) : {};
    const tok = new Tokenizer(json as object, cfg as object);
    let pair: PairTemplate | null = null;
    try {
      pair = probePair(tok);
    } catch {
      /* embedder tokenizers may have no pair template */
    }
    return new TextTokenizer(tok, probeSingle(tok), pair);
  }

  /** Content token ids of a text, without special tokens. */
  content(text: string): number[] {
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    for (const id of ids) {
      if (typeof id !== 'number') throw new Error('tokenizer produced an undefined id (is tokenizer_config.json with unk_token missing?)');
    }
    return ids;
  }

  /** Special tokens a single sequence adds. */
  get singleOverhead(): number {
    return this.single.prefix.ids.length + this.single.suffix.ids.length;
  }

  private get pair(): PairTemplate {
    if (!this.pairTemplate) throw new Error('this tokenizer has no pair template');
    return this.pairTemplate;
  }

  get pairOverhead(): number {
    return this.pair.prefix.ids.length + this.pair.middle.ids.length + this.pair.suffix.ids.length;
  }

  /** One sequence with special tokens; over maxLength it is cut (truncate) or rejected. */
  encode(text: string, maxLength: number, truncate: boolean): Encoded {
    let c = this.content(text);
    const budget = Math.max(0, maxLength - this.singleOverhead);
    if (c.length > budget) {
      if (!truncate) throw new TooLongError(c.length + this.singleOverhead, maxLength);
      c = c.slice(0, budget);
    }
    const { prefix, suffix, contentType } = this.single;
    return {
      ids: [...prefix.ids, ...c, ...suffix.ids],
      typeIds: [...prefix.typeIds, ...c.map(() => contentType), ...suffix.typeIds],
    };
  }

  /** A (query, passage) pair; the passage is cut first, the query only if it alone would not fit
   *  in half the budget. `queryContent` lets a caller tokenize one query once for many passages. */
  encodePair(queryContent: number[], passage: string, maxLength: number): Encoded {
    let q = queryContent;
    let p = this.content(passage);
    const budget = Math.max(0, maxLength - this.pairOverhead);
    if (q.length + p.length > budget) {
      const qKeep = Math.min(q.length, Math.max(budget - p.length, Math.ceil(budget / 2)));
      q = q.slice(0, qKeep);
      p = p.slice(0, budget - qKeep);
    }
    const { prefix, middle, suffix, aType, bType } = this.pair;
    return {
      ids: [...prefix.ids, ...q, ...middle.ids, ...p, ...suffix.ids],
      typeIds: [...prefix.typeIds, ...q.map(() => aType), ...middle.typeIds, ...p.map(() => bType), ...suffix.typeIds],
    };
  }
}

function indexOfSeq(hay: number[], needle: number[], from = 0): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function piece(e: { ids: number[]; token_type_ids: number[] }, from: number, to: number): Piece {
  return { ids: e.ids.slice(from, to), typeIds: e.token_type_ids.slice(from, to) };
}

function probeSingle(tok: Tokenizer): SingleTemplate {
  const a = tok.encode('a', { add_special_tokens: false }).ids;
  const full = tok.encode('a', { return_token_type_ids: true });
  const at = indexOfSeq(full.ids, a);
  if (at < 0) throw new Error('cannot learn the tokenizer template (single)');
  return { prefix: piece(full, 0, at), suffix: piece(full, at + a.length, full.ids.length), contentType: full.token_type_ids[at] ?? 0 };
}

function probePair(tok: Tokenizer): PairTemplate {
  const a = tok.encode('a', { add_special_tokens: false }).ids;
  const b = tok.encode('b', { add_special_tokens: false }).ids;
  const full = tok.encode('a', { text_pair: 'b', return_token_type_ids: true });
  const ai = indexOfSeq(full.ids, a);
  const bi = indexOfSeq(full.ids, b, ai + a.length);
  if (ai < 0 || bi < 0) throw new Error('cannot learn the tokenizer template (pair)');
  return {
    prefix: piece(full, 0, ai),
    middle: piece(full, ai + a.length, bi),
    suffix: piece(full, bi + b.length, full.ids.length),
    aType: full.token_type_ids[ai] ?? 0,
    bType: full.token_type_ids[bi] ?? 0,
  };
}

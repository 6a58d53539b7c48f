// Messages between the main thread and an inference worker. Each worker owns the model's tokenizer
// and one onnxruntime session: the main thread sends raw texts (one message per batch) and gets
// back pooled vectors in one transferred Float32Array buffer, so neither tokenizing (pure JS, about
// 300 us for a 128-token text) nor inference (onnxruntime-node's session.run is synchronous on the
// calling thread, only deferred by setImmediate) runs on the event loop.

export interface WorkerInit {
  modelPath: string;
  tokenizerPath: string;
  tokenizerConfigPath?: string;
  kind: 'embedding' | 'rerank';
  /** Tokens incl. special tokens (pairs: both together). */
  maxLength: number;
  output?: string;
  pooling: 'mean' | 'cls' | 'none';
  normalize: boolean;
  logitIndex: number;
  executionProvider: 'cpu' | 'cuda';
  cudaDeviceId: number;
  intraOpNumThreads: number;
}

/** One batch of work items, flattened into arrays (cheap to clone). Prefixes are already applied. */
export interface RunInput {
  /** Embedding: the texts. Rerank: the passages. */
  texts: string[];
  /** Embedding: per text, 1 = cut an over-long text, 0 = report it as too long. */
  truncate?: Uint8Array;
  /** Rerank: the distinct queries of the batch (each tokenized once)... */
  queries?: string[];
  /** ...and per passage, the index of its query. */
  queryIndex?: Int32Array;
}

/** An item the worker could not run (the rest of the batch still runs). */
export interface ItemFailure {
  index: number;
  message: string;
  /** Set when the item is over the maximum length and truncation was off. */
  tooLong?: { tokens: number; maxLength: number };
}

/** Outputs in item order: `texts.length` rows x `cols` float32 (embeddings, or scores with cols = 1).
 *  Rows of failed items are zeros. */
export interface RunOutput {
  cols: number;
  data: ArrayBuffer;
  /** Int32Array buffer: tokens run per item, special tokens included (0 for failed items). */
  tokens: ArrayBuffer;
  failures: ItemFailure[];
  /** onnxruntime calls (length groups) and tokens fed incl. padding, for batching stats. */
  groups: number;
  paddedTokens: number;
  tokenizeMs: number;
  runMs: number;
}

export type ToWorker = { type: 'run'; id: number; input: RunInput } | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; provider: 'cpu' | 'cuda'; fallbackReason?: string; output: string; inputNames: string[]; outputNames: string[] }
  | { type: 'init-error'; message: string }
  | ({ type: 'result'; id: number } & RunOutput)
  | { type: 'error'; id: number; message: string };

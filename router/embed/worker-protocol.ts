// Messages between the main thread and an inference worker. onnxruntime-node's session.run is
// synchronous on the calling thread (it is only deferred by setImmediate), so sessions live in
// worker threads to keep the event loop free; buffers are transferred, not copied.

export interface WorkerInit {
  modelPath: string;
  kind: 'embedding' | 'rerank';
  output?: string;
  pooling: 'mean' | 'cls' | 'none';
  normalize: boolean;
  logitIndex: number;
  executionProvider: 'cpu' | 'cuda';
  cudaDeviceId: number;
  intraOpNumThreads: number;
}

/** One padded batch: int64 [batch, seq] arrays as BigInt64Array buffers. */
export interface BatchInput {
  batch: number;
  seq: number;
  inputIds: ArrayBuffer;
  attentionMask: ArrayBuffer;
  tokenTypeIds: ArrayBuffer;
}

/** rows x cols float32: embeddings (cols = dims) or scores (cols = 1). */
export interface BatchOutput {
  rows: number;
  cols: number;
  data: ArrayBuffer;
}

export type ToWorker = { type: 'run'; id: number; batches: BatchInput[] } | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; provider: 'cpu' | 'cuda'; fallbackReason?: string; output: string; inputNames: string[]; outputNames: string[] }
  | { type: 'init-error'; message: string }
  | { type: 'result'; id: number; outputs: BatchOutput[]; runMs: number }
  | { type: 'error'; id: number; message: string };

// Worker thread entry: owns one onnxruntime session, runs padded batches and pools the outputs,
// so the main thread only tokenizes and routes results.
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { clsPool, l2NormalizeRows, meanPool } from './pooling.ts';
import type { BatchInput, BatchOutput, FromWorker, ToWorker, WorkerInit } from './worker-protocol.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

async function createSession(): Promise<{ session: ort.InferenceSession; provider: 'cpu' | 'cuda'; fallbackReason?: string }> {
  const base: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: init.intraOpNumThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  };
  if (init.executionProvider === 'cuda') {
    ort.env.logLevel = 'fatal';
    try {
      const session = await ort.InferenceSession.create(init.modelPath, {
        ...base,
        // The fallback is logged once by the main thread; keep onnxruntime's own error quiet.
        logSeverityLevel: 4,
        executionProviders: [{ name: 'cuda', deviceId: init.cudaDeviceId }],
      });
      return { session, provider: 'cuda' };
    } catch (err) {
      const session = await ort.InferenceSession.create(init.modelPath, { ...base, executionProviders: ['cpu'] });
      return { session, provider: 'cpu', fallbackReason: String(err).split('\n')[0] };
    }
  }
  const session = await ort.InferenceSession.create(init.modelPath, { ...base, executionProviders: ['cpu'] });
  return { session, provider: 'cpu' };
}

function pickOutput(names: readonly string[]): string {
  if (init.output) {
    if (!names.includes(init.output)) throw new Error(`model has no output '${init.output}' (outputs: ${names.join(', ')})`);
    return init.output;
  }
  const preferred = init.kind === 'rerank' ? ['logits', 'scores'] : ['sentence_embedding', 'last_hidden_state', 'token_embeddings'];
  return preferred.find((n) => names.includes(n)) ?? names[0]!;
}

async function main(): Promise<void> {
  let session: ort.InferenceSession;
  let output: string;
  try {
    const s = await createSession();
    session = s.session;
    output = pickOutput(session.outputNames);
    post({ type: 'ready', provider: s.provider, fallbackReason: s.fallbackReason, output, inputNames: [...session.inputNames], outputNames: [...session.outputNames] });
  } catch (err) {
    post({ type: 'init-error', message: err instanceof Error ? err.message : String(err) });
    return;
  }
  const inputNames = new Set(session.inputNames);

  const runOne = async (b: BatchInput): Promise<BatchOutput> => {
    const dims = [b.batch, b.seq];
    const mask = new BigInt64Array(b.attentionMask);
    const feeds: Record<string, ort.Tensor> = {};
    // Feed only what the graph declares: some exports (DistilBERT, RoBERTa) have no token_type_ids.
    if (inputNames.has('input_ids')) feeds.input_ids = new ort.Tensor('int64', new BigInt64Array(b.inputIds), dims);
    if (inputNames.has('attention_mask')) feeds.attention_mask = new ort.Tensor('int64', mask, dims);
    if (inputNames.has('token_type_ids')) feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(b.tokenTypeIds), dims);
    const result = await session.run(feeds, [output]);
    const t = result[output]!;
    const data = t.data as Float32Array;
    try {
      if (init.kind === 'rerank') {
        const cols = t.dims.length >= 2 ? Number(t.dims[t.dims.length - 1]) : 1;
        if (init.logitIndex >= cols) throw new Error(`logitIndex ${init.logitIndex} out of range for output with ${cols} columns`);
        const scores = new Float32Array(b.batch);
        for (let i = 0; i < b.batch; i++) scores[i] = data[i * cols + init.logitIndex]!;
        return { rows: b.batch, cols: 1, data: scores.buffer };
      }
      let vecs: Float32Array;
      let hidden: number;
      if (t.dims.length === 3) {
        hidden = Number(t.dims[2]);
        if (init.pooling === 'none') throw new Error(`output '${output}' is per-token; set pooling to mean or cls`);
        vecs = init.pooling === 'cls' ? clsPool(data, b.batch, b.seq, hidden) : meanPool(data, mask, b.batch, b.seq, hidden);
      } else if (t.dims.length === 2) {
        hidden = Number(t.dims[1]);
        vecs = data.slice(0, b.batch * hidden);
      } else {
        throw new Error(`output '${output}' has unsupported shape [${t.dims.join(', ')}]`);
      }
      if (init.normalize) l2NormalizeRows(vecs, b.batch, hidden);
      return { rows: b.batch, cols: hidden, data: vecs.buffer as ArrayBuffer };
    } finally {
      for (const v of Object.values(result)) v.dispose();
    }
  };

  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'close') {
      void session.release().finally(() => port.close());
      return;
    }
    const t0 = performance.now();
    (async () => {
      const outputs: BatchOutput[] = [];
      for (const b of msg.batches) outputs.push(await runOne(b));
      post({ type: 'result', id: msg.id, outputs, runMs: performance.now() - t0 }, outputs.map((o) => o.data));
    })().catch((err: unknown) => post({ type: 'error', id: msg.id, message: err instanceof Error ? err.message : String(err) }));
  });
}

void main();

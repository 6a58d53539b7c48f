// The OpenAI shapes the Files and Batch APIs answer with (checked against openai-node's
// resources/files.d.ts and resources/batches.d.ts), plus the router's own bookkeeping.

export interface FileObject {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  filename: string;
  purpose: 'batch' | 'batch_output';
  status: 'processed';
  expires_at?: number | null;
}

export interface StoredFile extends FileObject {
  /** Owner; never sent to clients. */
  tenant: string;
}

export type BatchStatus = 'validating' | 'failed' | 'in_progress' | 'finalizing' | 'completed' | 'expired' | 'cancelling' | 'cancelled';
export const TERMINAL: ReadonlySet<BatchStatus> = new Set(['failed', 'completed', 'expired', 'cancelled']);

export interface BatchError {
  code: string;
  line: number | null;
  message: string;
  param: string | null;
}

export interface Batch {
  id: string;
  object: 'batch';
  endpoint: string;
  errors: { object: 'list'; data: BatchError[] } | null;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number | null;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  usage?: {
    input_tokens: number;
    input_tokens_details: { cached_tokens: number };
    output_tokens: number;
    output_tokens_details: { reasoning_tokens: number };
    total_tokens: number;
  };
  metadata: Record<string, string> | null;
}

/** What the store keeps: the public batch plus who owns it and the webhook's delivery state. */
export interface BatchRecord extends Batch {
  tenant: string;
  /** The key the items run as (its limits, budgets and lane cap apply); null without auth. */
  keyId: string | null;
  /** ms since epoch; the completion window's end. */
  expiresAtMs: number;
  /** The batch's `output_expires_after.seconds`: its output and error files expire this long after they are written. */
  outputExpiresAfterSeconds?: number;
  webhook?: { state: 'pending' | 'delivered' | 'failed'; attempts: number; nextAt: number; eventId: string };
}

export function publicBatch(r: BatchRecord): Batch {
  const { tenant: _t, keyId: _k, expiresAtMs: _e, webhook: _w, outputExpiresAfterSeconds: _o, ...pub } = r;
  return pub;
}

export function publicFile(f: StoredFile): FileObject {
  const { tenant: _t, ...pub } = f;
  return pub;
}

/** One request line of the input file. */
export interface ItemSpec {
  index: number;
  custom_id: string;
  method: 'POST';
  url: string;
  body: Record<string, unknown>;
}

/** One line of the output or error file (OpenAI's exact shape). */
export interface ResultLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: unknown } | null;
  error: { code: string; message: string } | null;
}

export interface DeadLetter {
  index: number;
  custom_id: string;
  attempts: number;
  status_code: number | null;
  error: { code: string | null; message: string };
  failed_at: number;
}

export interface Claim {
  index: number;
  token: string;
  attempts: number;
}

export interface ItemCounts {
  pending: number;
  output: number;
  errors: number;
  dead: number;
}

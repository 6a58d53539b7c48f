// Original file: proto/inference/v1/node_agent.proto

import type { Usage as _inference_v1_Usage, Usage__Output as _inference_v1_Usage__Output } from '../../inference/v1/Usage';
import type { GenerateError as _inference_v1_GenerateError, GenerateError__Output as _inference_v1_GenerateError__Output } from '../../inference/v1/GenerateError';

export interface GenerateEvent {
  'chunkJson'?: (string);
  'responseJson'?: (string);
  'usage'?: (_inference_v1_Usage | null);
  'error'?: (_inference_v1_GenerateError | null);
  'event'?: "chunkJson"|"responseJson"|"usage"|"error";
}

export interface GenerateEvent__Output {
  'chunkJson'?: (string);
  'responseJson'?: (string);
  'usage'?: (_inference_v1_Usage__Output | null);
  'error'?: (_inference_v1_GenerateError__Output | null);
  'event'?: "chunkJson"|"responseJson"|"usage"|"error";
}

// Original file: proto/inference/v1/node_agent.proto

import type { Usage as _inference_v1_Usage, Usage__Output as _inference_v1_Usage__Output } from '../../inference/v1/Usage';
import type { GenerateError as _inference_v1_GenerateError, GenerateError__Output as _inference_v1_GenerateError__Output } from '../../inference/v1/GenerateError';
import type { Frames as _inference_v1_Frames, Frames__Output as _inference_v1_Frames__Output } from '../../inference/v1/Frames';
import type { Response as _inference_v1_Response, Response__Output as _inference_v1_Response__Output } from '../../inference/v1/Response';

export interface GenerateEvent {
  'chunkJson'?: (string);
  'responseJson'?: (string);
  'usage'?: (_inference_v1_Usage | null);
  'error'?: (_inference_v1_GenerateError | null);
  'frames'?: (_inference_v1_Frames | null);
  'response'?: (_inference_v1_Response | null);
  'event'?: "chunkJson"|"responseJson"|"usage"|"error"|"frames"|"response";
}

export interface GenerateEvent__Output {
  'chunkJson'?: (string);
  'responseJson'?: (string);
  'usage'?: (_inference_v1_Usage__Output | null);
  'error'?: (_inference_v1_GenerateError__Output | null);
  'frames'?: (_inference_v1_Frames__Output | null);
  'response'?: (_inference_v1_Response__Output | null);
  'event'?: "chunkJson"|"responseJson"|"usage"|"error"|"frames"|"response";
}

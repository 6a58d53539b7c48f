// Original file: proto/inference/v1/node_agent.proto

import type { Operation as _inference_v1_Operation, Operation__Output as _inference_v1_Operation__Output } from '../../inference/v1/Operation';

export interface GenerateRequest {
  'requestId'?: (string);
  'operation'?: (_inference_v1_Operation);
  'model'?: (string);
  'bodyJson'?: (string);
  'answerFormat'?: (number);
}

export interface GenerateRequest__Output {
  'requestId': (string);
  'operation': (_inference_v1_Operation__Output);
  'model': (string);
  'bodyJson': (string);
  'answerFormat': (number);
}

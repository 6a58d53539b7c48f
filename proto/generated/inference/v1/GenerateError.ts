// Original file: proto/inference/v1/node_agent.proto

import type { ErrorKind as _inference_v1_ErrorKind, ErrorKind__Output as _inference_v1_ErrorKind__Output } from '../../inference/v1/ErrorKind';

export interface GenerateError {
  'kind'?: (_inference_v1_ErrorKind);
  'message'?: (string);
  'httpStatus'?: (number);
  'errorJson'?: (string);
  'beforeFirstToken'?: (boolean);
}

export interface GenerateError__Output {
  'kind': (_inference_v1_ErrorKind__Output);
  'message': (string);
  'httpStatus': (number);
  'errorJson': (string);
  'beforeFirstToken': (boolean);
}

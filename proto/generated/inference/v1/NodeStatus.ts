// Original file: proto/inference/v1/node_agent.proto

import type { ModelInfo as _inference_v1_ModelInfo, ModelInfo__Output as _inference_v1_ModelInfo__Output } from '../../inference/v1/ModelInfo';
import type { EngineLoad as _inference_v1_EngineLoad, EngineLoad__Output as _inference_v1_EngineLoad__Output } from '../../inference/v1/EngineLoad';
import type { HealthVerdict as _inference_v1_HealthVerdict, HealthVerdict__Output as _inference_v1_HealthVerdict__Output } from '../../inference/v1/HealthVerdict';
import type { GpuHealth as _inference_v1_GpuHealth, GpuHealth__Output as _inference_v1_GpuHealth__Output } from '../../inference/v1/GpuHealth';
import type { Long } from '@grpc/proto-loader';

export interface NodeStatus {
  'nodeId'?: (string);
  'seq'?: (number | string | Long);
  'timestampMs'?: (number | string | Long);
  'ready'?: (boolean);
  'notReadyReason'?: (string);
  'draining'?: (boolean);
  'models'?: (_inference_v1_ModelInfo)[];
  'load'?: (_inference_v1_EngineLoad | null);
  'gpuVerdict'?: (_inference_v1_HealthVerdict);
  'gpus'?: (_inference_v1_GpuHealth)[];
  'heartbeatIntervalMs'?: (number);
}

export interface NodeStatus__Output {
  'nodeId': (string);
  'seq': (string);
  'timestampMs': (string);
  'ready': (boolean);
  'notReadyReason': (string);
  'draining': (boolean);
  'models': (_inference_v1_ModelInfo__Output)[];
  'load': (_inference_v1_EngineLoad__Output | null);
  'gpuVerdict': (_inference_v1_HealthVerdict__Output);
  'gpus': (_inference_v1_GpuHealth__Output)[];
  'heartbeatIntervalMs': (number);
}

// Original file: proto/inference/v1/node_agent.proto

import type { HealthVerdict as _inference_v1_HealthVerdict, HealthVerdict__Output as _inference_v1_HealthVerdict__Output } from '../../inference/v1/HealthVerdict';

export interface GpuHealth {
  'index'?: (number);
  'uuid'?: (string);
  'name'?: (string);
  'verdict'?: (_inference_v1_HealthVerdict);
  'reasons'?: (string)[];
  'readings'?: ({[key: string]: string});
}

export interface GpuHealth__Output {
  'index': (number);
  'uuid': (string);
  'name': (string);
  'verdict': (_inference_v1_HealthVerdict__Output);
  'reasons': (string)[];
  'readings': ({[key: string]: string});
}

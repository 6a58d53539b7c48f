// Original file: proto/inference/v1/node_agent.proto

import type { Long } from '@grpc/proto-loader';

export interface EngineLoad {
  'running'?: (number);
  'waiting'?: (number);
  'kvCacheUsage'?: (number | string);
  'ttftRecentSeconds'?: (number | string);
  'prefixCacheHitRate'?: (number | string);
  'maxNumSeqs'?: (number);
  'kvCacheCapacityTokens'?: (number | string | Long);
}

export interface EngineLoad__Output {
  'running': (number);
  'waiting': (number);
  'kvCacheUsage': (number);
  'ttftRecentSeconds': (number);
  'prefixCacheHitRate': (number);
  'maxNumSeqs': (number);
  'kvCacheCapacityTokens': (string);
}

// Original file: proto/inference/v1/node_agent.proto


export interface WatchStatusRequest {
  'routerId'?: (string);
}

export interface WatchStatusRequest__Output {
  'routerId': (string);
}

// Original file: proto/inference/v1/node_agent.proto


export interface DrainRequest {
  'graceMs'?: (number);
}

export interface DrainRequest__Output {
  'graceMs': (number);
}

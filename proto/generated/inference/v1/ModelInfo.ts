// Original file: proto/inference/v1/node_agent.proto


export interface ModelInfo {
  'name'?: (string);
  'engineKind'?: (string);
  'maxContext'?: (number);
}

export interface ModelInfo__Output {
  'name': (string);
  'engineKind': (string);
  'maxContext': (number);
}

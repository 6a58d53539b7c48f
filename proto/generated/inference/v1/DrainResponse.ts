// Original file: proto/inference/v1/node_agent.proto


export interface DrainResponse {
  'draining'?: (boolean);
  'inFlight'?: (number);
}

export interface DrainResponse__Output {
  'draining': (boolean);
  'inFlight': (number);
}

// Original file: proto/inference/v1/node_agent.proto


export interface Response {
  'json'?: (Buffer | Uint8Array | string);
  'model'?: (string);
}

export interface Response__Output {
  'json': (Buffer);
  'model': (string);
}

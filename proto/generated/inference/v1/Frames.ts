// Original file: proto/inference/v1/node_agent.proto


export interface Frames {
  'sse'?: (Buffer | Uint8Array | string);
  'chunks'?: (number);
  'model'?: (string);
}

export interface Frames__Output {
  'sse': (Buffer);
  'chunks': (number);
  'model': (string);
}

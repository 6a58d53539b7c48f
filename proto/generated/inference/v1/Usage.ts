// Original file: proto/inference/v1/node_agent.proto


export interface Usage {
  'promptTokens'?: (number);
  'completionTokens'?: (number);
  'cachedPromptTokens'?: (number);
  'ttftSeconds'?: (number | string);
}

export interface Usage__Output {
  'promptTokens': (number);
  'completionTokens': (number);
  'cachedPromptTokens': (number);
  'ttftSeconds': (number);
}

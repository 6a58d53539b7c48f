// Original file: proto/inference/v1/node_agent.proto

export const Operation = {
  OPERATION_UNSPECIFIED: 'OPERATION_UNSPECIFIED',
  CHAT_COMPLETIONS: 'CHAT_COMPLETIONS',
  COMPLETIONS: 'COMPLETIONS',
} as const;

export type Operation =
  | 'OPERATION_UNSPECIFIED'
  | 0
  | 'CHAT_COMPLETIONS'
  | 1
  | 'COMPLETIONS'
  | 2

export type Operation__Output = typeof Operation[keyof typeof Operation]

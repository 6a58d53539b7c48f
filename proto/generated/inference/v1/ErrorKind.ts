// Original file: proto/inference/v1/node_agent.proto

export const ErrorKind = {
  ERROR_KIND_UNSPECIFIED: 'ERROR_KIND_UNSPECIFIED',
  ENGINE_UNAVAILABLE: 'ENGINE_UNAVAILABLE',
  ENGINE_OVERLOADED: 'ENGINE_OVERLOADED',
  INVALID_REQUEST: 'INVALID_REQUEST',
  ENGINE_ERROR: 'ENGINE_ERROR',
  TIMEOUT: 'TIMEOUT',
  DRAINING: 'DRAINING',
  CANCELLED: 'CANCELLED',
} as const;

export type ErrorKind =
  | 'ERROR_KIND_UNSPECIFIED'
  | 0
  | 'ENGINE_UNAVAILABLE'
  | 1
  | 'ENGINE_OVERLOADED'
  | 2
  | 'INVALID_REQUEST'
  | 3
  | 'ENGINE_ERROR'
  | 4
  | 'TIMEOUT'
  | 5
  | 'DRAINING'
  | 6
  | 'CANCELLED'
  | 7

export type ErrorKind__Output = typeof ErrorKind[keyof typeof ErrorKind]

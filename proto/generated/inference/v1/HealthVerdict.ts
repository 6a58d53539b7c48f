// Original file: proto/inference/v1/node_agent.proto

export const HealthVerdict = {
  HEALTH_VERDICT_UNSPECIFIED: 'HEALTH_VERDICT_UNSPECIFIED',
  HEALTHY: 'HEALTHY',
  DEGRADED: 'DEGRADED',
  UNHEALTHY: 'UNHEALTHY',
} as const;

export type HealthVerdict =
  | 'HEALTH_VERDICT_UNSPECIFIED'
  | 0
  | 'HEALTHY'
  | 1
  | 'DEGRADED'
  | 2
  | 'UNHEALTHY'
  | 3

export type HealthVerdict__Output = typeof HealthVerdict[keyof typeof HealthVerdict]

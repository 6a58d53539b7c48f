// Loads the router <-> agent contract (proto/inference/v1/node_agent.proto) at run time with
// @grpc/proto-loader; the TypeScript types come from proto-loader-gen-types (`npm run gen:proto`).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.ts';
import type { ProtoGrpcType } from '../proto/generated/node_agent';
import type { NodeAgentClient, NodeAgentHandlers } from '../proto/generated/inference/v1/NodeAgent';
import type { AgentChannelSecurity } from './tls.ts';

export type { NodeAgentClient, NodeAgentHandlers };
export type { NodeStatus, NodeStatus__Output } from '../proto/generated/inference/v1/NodeStatus';
export type { GenerateEvent, GenerateEvent__Output } from '../proto/generated/inference/v1/GenerateEvent';
export type { GenerateRequest, GenerateRequest__Output } from '../proto/generated/inference/v1/GenerateRequest';
export type { GenerateError, GenerateError__Output } from '../proto/generated/inference/v1/GenerateError';
export type { Usage, Usage__Output } from '../proto/generated/inference/v1/Usage';
export type { GpuHealth } from '../proto/generated/inference/v1/GpuHealth';
export type { ModelInfo, ModelInfo__Output } from '../proto/generated/inference/v1/ModelInfo';
export type { EngineLoad, EngineLoad__Output } from '../proto/generated/inference/v1/EngineLoad';
export type { ErrorKind } from '../proto/generated/inference/v1/ErrorKind';

// From the install root, not next to this module: compiled code runs from dist/.
export const PROTO_PATH = join(REPO_ROOT, 'proto/inference/v1/node_agent.proto');

// Same options as `gen:proto`, so the generated types describe what the loader produces.
const definition = protoLoader.loadSync(PROTO_PATH, { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true });
const loaded = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;

export const NodeAgentService = loaded.inference.v1.NodeAgent.service;
export const NODE_AGENT_SERVICE_NAME = 'inference.v1.NodeAgent';

/** Keepalive so a dead peer (SIGKILL, cable pulled) is noticed in seconds, not minutes. */
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 2_000,
};

/**
 * Plaintext unless `security` (common/tls.ts agentChannelSecurity) carries TLS credentials. With
 * `token` (a call or control token, common/credentials.ts) every call carries it as
 * `authorization: Bearer`; an interceptor, since grpc-js composes call credentials only with TLS.
 */
export function createNodeAgentClient(address: string, security?: AgentChannelSecurity, token?: string): NodeAgentClient {
  const interceptors: grpc.Interceptor[] = token
    ? [
        (options, nextCall) =>
          new grpc.InterceptingCall(nextCall(options), {
            start(metadata, listener, next) {
              metadata.set('authorization', `Bearer ${token}`);
              next(metadata, listener);
            },
          }),
      ]
    : [];
  return new loaded.inference.v1.NodeAgent(address, security?.credentials ?? grpc.credentials.createInsecure(), {
    ...CHANNEL_OPTIONS,
    ...security?.options,
    interceptors,
  });
}

export { grpc };

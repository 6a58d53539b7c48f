// Original file: proto/inference/v1/node_agent.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { DrainRequest as _inference_v1_DrainRequest, DrainRequest__Output as _inference_v1_DrainRequest__Output } from '../../inference/v1/DrainRequest';
import type { DrainResponse as _inference_v1_DrainResponse, DrainResponse__Output as _inference_v1_DrainResponse__Output } from '../../inference/v1/DrainResponse';
import type { GenerateEvent as _inference_v1_GenerateEvent, GenerateEvent__Output as _inference_v1_GenerateEvent__Output } from '../../inference/v1/GenerateEvent';
import type { GenerateRequest as _inference_v1_GenerateRequest, GenerateRequest__Output as _inference_v1_GenerateRequest__Output } from '../../inference/v1/GenerateRequest';
import type { NodeStatus as _inference_v1_NodeStatus, NodeStatus__Output as _inference_v1_NodeStatus__Output } from '../../inference/v1/NodeStatus';
import type { ResumeRequest as _inference_v1_ResumeRequest, ResumeRequest__Output as _inference_v1_ResumeRequest__Output } from '../../inference/v1/ResumeRequest';
import type { WatchStatusRequest as _inference_v1_WatchStatusRequest, WatchStatusRequest__Output as _inference_v1_WatchStatusRequest__Output } from '../../inference/v1/WatchStatusRequest';

export interface NodeAgentClient extends grpc.Client {
  Drain(argument: _inference_v1_DrainRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  Drain(argument: _inference_v1_DrainRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  Drain(argument: _inference_v1_DrainRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  Drain(argument: _inference_v1_DrainRequest, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  drain(argument: _inference_v1_DrainRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  drain(argument: _inference_v1_DrainRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  drain(argument: _inference_v1_DrainRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  drain(argument: _inference_v1_DrainRequest, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  
  Generate(argument: _inference_v1_GenerateRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_inference_v1_GenerateEvent__Output>;
  Generate(argument: _inference_v1_GenerateRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_inference_v1_GenerateEvent__Output>;
  generate(argument: _inference_v1_GenerateRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_inference_v1_GenerateEvent__Output>;
  generate(argument: _inference_v1_GenerateRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_inference_v1_GenerateEvent__Output>;
  
  Resume(argument: _inference_v1_ResumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  Resume(argument: _inference_v1_ResumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  Resume(argument: _inference_v1_ResumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  Resume(argument: _inference_v1_ResumeRequest, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  resume(argument: _inference_v1_ResumeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  resume(argument: _inference_v1_ResumeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  resume(argument: _inference_v1_ResumeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  resume(argument: _inference_v1_ResumeRequest, callback: grpc.requestCallback<_inference_v1_DrainResponse__Output>): grpc.ClientUnaryCall;
  
  WatchStatus(argument: _inference_v1_WatchStatusRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_inference_v1_NodeStatus__Output>;
  WatchStatus(argument: _inference_v1_WatchStatusRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_inference_v1_NodeStatus__Output>;
  watchStatus(argument: _inference_v1_WatchStatusRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_inference_v1_NodeStatus__Output>;
  watchStatus(argument: _inference_v1_WatchStatusRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_inference_v1_NodeStatus__Output>;
  
}

export interface NodeAgentHandlers extends grpc.UntypedServiceImplementation {
  Drain: grpc.handleUnaryCall<_inference_v1_DrainRequest__Output, _inference_v1_DrainResponse>;
  
  Generate: grpc.handleServerStreamingCall<_inference_v1_GenerateRequest__Output, _inference_v1_GenerateEvent>;
  
  Resume: grpc.handleUnaryCall<_inference_v1_ResumeRequest__Output, _inference_v1_DrainResponse>;
  
  WatchStatus: grpc.handleServerStreamingCall<_inference_v1_WatchStatusRequest__Output, _inference_v1_NodeStatus>;
  
}

export interface NodeAgentDefinition extends grpc.ServiceDefinition {
  Drain: MethodDefinition<_inference_v1_DrainRequest, _inference_v1_DrainResponse, _inference_v1_DrainRequest__Output, _inference_v1_DrainResponse__Output>
  Generate: MethodDefinition<_inference_v1_GenerateRequest, _inference_v1_GenerateEvent, _inference_v1_GenerateRequest__Output, _inference_v1_GenerateEvent__Output>
  Resume: MethodDefinition<_inference_v1_ResumeRequest, _inference_v1_DrainResponse, _inference_v1_ResumeRequest__Output, _inference_v1_DrainResponse__Output>
  WatchStatus: MethodDefinition<_inference_v1_WatchStatusRequest, _inference_v1_NodeStatus, _inference_v1_WatchStatusRequest__Output, _inference_v1_NodeStatus__Output>
}

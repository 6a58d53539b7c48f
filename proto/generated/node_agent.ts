import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { DrainRequest as _inference_v1_DrainRequest, DrainRequest__Output as _inference_v1_DrainRequest__Output } from './inference/v1/DrainRequest';
import type { DrainResponse as _inference_v1_DrainResponse, DrainResponse__Output as _inference_v1_DrainResponse__Output } from './inference/v1/DrainResponse';
import type { EngineLoad as _inference_v1_EngineLoad, EngineLoad__Output as _inference_v1_EngineLoad__Output } from './inference/v1/EngineLoad';
import type { Frames as _inference_v1_Frames, Frames__Output as _inference_v1_Frames__Output } from './inference/v1/Frames';
import type { GenerateError as _inference_v1_GenerateError, GenerateError__Output as _inference_v1_GenerateError__Output } from './inference/v1/GenerateError';
import type { GenerateEvent as _inference_v1_GenerateEvent, GenerateEvent__Output as _inference_v1_GenerateEvent__Output } from './inference/v1/GenerateEvent';
import type { GenerateRequest as _inference_v1_GenerateRequest, GenerateRequest__Output as _inference_v1_GenerateRequest__Output } from './inference/v1/GenerateRequest';
import type { GpuHealth as _inference_v1_GpuHealth, GpuHealth__Output as _inference_v1_GpuHealth__Output } from './inference/v1/GpuHealth';
import type { ModelInfo as _inference_v1_ModelInfo, ModelInfo__Output as _inference_v1_ModelInfo__Output } from './inference/v1/ModelInfo';
import type { NodeAgentClient as _inference_v1_NodeAgentClient, NodeAgentDefinition as _inference_v1_NodeAgentDefinition } from './inference/v1/NodeAgent';
import type { NodeStatus as _inference_v1_NodeStatus, NodeStatus__Output as _inference_v1_NodeStatus__Output } from './inference/v1/NodeStatus';
import type { Response as _inference_v1_Response, Response__Output as _inference_v1_Response__Output } from './inference/v1/Response';
import type { ResumeRequest as _inference_v1_ResumeRequest, ResumeRequest__Output as _inference_v1_ResumeRequest__Output } from './inference/v1/ResumeRequest';
import type { Usage as _inference_v1_Usage, Usage__Output as _inference_v1_Usage__Output } from './inference/v1/Usage';
import type { WatchStatusRequest as _inference_v1_WatchStatusRequest, WatchStatusRequest__Output as _inference_v1_WatchStatusRequest__Output } from './inference/v1/WatchStatusRequest';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  inference: {
    v1: {
      DrainRequest: MessageTypeDefinition<_inference_v1_DrainRequest, _inference_v1_DrainRequest__Output>
      DrainResponse: MessageTypeDefinition<_inference_v1_DrainResponse, _inference_v1_DrainResponse__Output>
      EngineLoad: MessageTypeDefinition<_inference_v1_EngineLoad, _inference_v1_EngineLoad__Output>
      ErrorKind: EnumTypeDefinition
      Frames: MessageTypeDefinition<_inference_v1_Frames, _inference_v1_Frames__Output>
      GenerateError: MessageTypeDefinition<_inference_v1_GenerateError, _inference_v1_GenerateError__Output>
      GenerateEvent: MessageTypeDefinition<_inference_v1_GenerateEvent, _inference_v1_GenerateEvent__Output>
      GenerateRequest: MessageTypeDefinition<_inference_v1_GenerateRequest, _inference_v1_GenerateRequest__Output>
      GpuHealth: MessageTypeDefinition<_inference_v1_GpuHealth, _inference_v1_GpuHealth__Output>
      HealthVerdict: EnumTypeDefinition
      ModelInfo: MessageTypeDefinition<_inference_v1_ModelInfo, _inference_v1_ModelInfo__Output>
      NodeAgent: SubtypeConstructor<typeof grpc.Client, _inference_v1_NodeAgentClient> & { service: _inference_v1_NodeAgentDefinition }
      NodeStatus: MessageTypeDefinition<_inference_v1_NodeStatus, _inference_v1_NodeStatus__Output>
      Operation: EnumTypeDefinition
      Response: MessageTypeDefinition<_inference_v1_Response, _inference_v1_Response__Output>
      ResumeRequest: MessageTypeDefinition<_inference_v1_ResumeRequest, _inference_v1_ResumeRequest__Output>
      Usage: MessageTypeDefinition<_inference_v1_Usage, _inference_v1_Usage__Output>
      WatchStatusRequest: MessageTypeDefinition<_inference_v1_WatchStatusRequest, _inference_v1_WatchStatusRequest__Output>
    }
  }
}


// Original file: proto/inference/v1/node_agent.proto


export interface ResumeRequest {
}

export interface ResumeRequest__Output {
}

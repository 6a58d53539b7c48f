// Mutual TLS between routers (and the control plane's Drain call) and node agents: PEM files
// named in config, read once at start (rotate by restarting; see docs/security.md).
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import * as grpc from '@grpc/grpc-js';

/** The agent's gRPC server: its certificate, and the CA that signs the routers' client certificates. */
export const agentServerTlsSchema = z
  .strictObject({
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
    /** CA bundle client certificates must chain to; required when requireClientCert is on. */
    caFile: z.string().min(1).optional(),
    /** Refuse a client without a certificate signed by caFile (mutual TLS). */
    requireClientCert: z.boolean().default(true),
    /** Client certificate CNs that are routers (Generate, WatchStatus). */
    routerIdentities: z.array(z.string().min(1)).default(['router']),
    /** Client certificate CNs that are the control plane (Drain, Resume, WatchStatus). */
    controlPlaneIdentities: z.array(z.string().min(1)).default(['control-plane']),
  })
  .refine((t) => !t.requireClientCert || t.caFile, { message: 'caFile is required when requireClientCert is true', path: ['caFile'] });

/** A gRPC client of the agents (router, control plane): the CA that signs agent certificates, and its own certificate. */
export const agentClientTlsSchema = z
  .strictObject({
    caFile: z.string().min(1),
    /** The client certificate and key, presented to agents that require one. */
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    /** Name to check the agent's certificate against instead of the dialed host (one shared agent cert). */
    serverName: z.string().min(1).optional(),
  })
  .refine((t) => !t.certFile === !t.keyFile, { message: 'certFile and keyFile go together', path: ['certFile'] });

export type AgentServerTls = z.infer<typeof agentServerTlsSchema>;
export type AgentClientTls = z.infer<typeof agentClientTlsSchema>;

/** A channel's credentials plus the options they need (the TLS name override). */
export interface AgentChannelSecurity {
  credentials: grpc.ChannelCredentials;
  options: grpc.ChannelOptions;
}

export function agentServerCredentials(tls: AgentServerTls | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(
    tls.caFile ? readFileSync(tls.caFile) : null,
    [{ cert_chain: readFileSync(tls.certFile), private_key: readFileSync(tls.keyFile) }],
    tls.requireClientCert,
  );
}

export function agentChannelSecurity(tls: AgentClientTls | undefined): AgentChannelSecurity {
  if (!tls) return { credentials: grpc.credentials.createInsecure(), options: {} };
  const credentials = grpc.credentials.createSsl(
    readFileSync(tls.caFile),
    tls.keyFile ? readFileSync(tls.keyFile) : null,
    tls.certFile ? readFileSync(tls.certFile) : null,
  );
  return {
    credentials,
    options: tls.serverName ? { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName } : {},
  };
}

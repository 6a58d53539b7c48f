// Who may call the agent's gRPC service: routers (Generate, WatchStatus) and the control plane
// (Drain, Resume, WatchStatus for the capacity sampler). A caller proves it with a verified client
// certificate whose CN is in the configured identities (mTLS), or with the token derived from this
// node's own token (common/credentials.ts). An agent with neither is open: it may only listen on
// loopback (node-agent/main.ts refuses otherwise).
import { agentCallToken, agentControlToken, bearerToken, tokenMatcher } from '../common/credentials.ts';
import { grpc } from '../common/grpc.ts';
import type { AgentServerTls } from '../common/tls.ts';

export type Caller = 'router' | 'control-plane';

export interface CallerAuthOptions {
  nodeToken?: string;
  tls?: AgentServerTls;
}

/** The parts of a server call the check reads. */
export interface CallCredentials {
  metadata: grpc.Metadata;
  getAuthContext(): { sslPeerCertificate?: { subject?: { CN?: string | string[] } } } | null;
}

export interface Denial {
  code: grpc.status;
  details: string;
}

export type CallerCheck = (call: CallCredentials, allowed: readonly Caller[]) => Denial | undefined;

export function callerAuthorizer({ nodeToken, tls }: CallerAuthOptions): { check: CallerCheck; open: boolean } {
  const certs = tls?.requireClientCert === true;
  const open = !nodeToken && !certs;
  const tokens: [Caller, (t: string) => boolean][] = nodeToken
    ? [
        ['router', tokenMatcher(agentCallToken(nodeToken))],
        ['control-plane', tokenMatcher(agentControlToken(nodeToken))],
      ]
    : [];
  const identities: [Caller, readonly string[]][] = certs
    ? [
        ['router', tls.routerIdentities],
        ['control-plane', tls.controlPlaneIdentities],
      ]
    : [];

  const check: CallerCheck = (call, allowed) => {
    if (open) return undefined;
    const who: Caller[] = [];
    let certName: string | undefined;
    const token = bearerToken(call.metadata.get('authorization')[0] as string | undefined);
    if (token !== undefined) for (const [caller, matches] of tokens) if (matches(token)) who.push(caller);
    if (certs) {
      const cn = call.getAuthContext()?.sslPeerCertificate?.subject?.CN;
      const name = Array.isArray(cn) ? cn[0] : cn;
      certName = name;
      if (name !== undefined) for (const [caller, names] of identities) if (names.includes(name)) who.push(caller);
    }
    if (who.some((c) => allowed.includes(c))) return undefined;
    if (who.length > 0) return { code: grpc.status.PERMISSION_DENIED, details: `a ${who[0]} may not make this call` };
    // A certificate the CA signed, but for no role here (another node's, say).
    if (certName !== undefined && token === undefined)
      return {
        code: grpc.status.PERMISSION_DENIED,
        details: `certificate '${certName.slice(0, 64)}' is not a router or control-plane identity`,
      };
    return {
      code: grpc.status.UNAUTHENTICATED,
      details: token !== undefined ? 'invalid token' : 'this node needs a credential (client certificate or token)',
    };
  };
  return { check, open };
}

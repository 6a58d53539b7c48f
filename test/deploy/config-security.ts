// What a shipped ICP config must say about trust (issue 17, item 5), checked on the raw YAML (not
// the schema's parse, so a default can never hide a missing setting): tenant keys required, the
// limits store failing closed, every credential read from a file (never written in the config),
// agents on mutual TLS, the control plane's state in a file. Shared by the compose and k8s checks.
import type { Doc } from './lib.ts';

/** The environment variable that lets a non-loopback service run without auth: never in a shipped config. */
export const UNSAFE_OVERRIDE = 'ICP_DANGEROUSLY_ALLOW_UNAUTHENTICATED_NETWORK';

/** Environment variable names that carry a credential. */
export const SECRET_ENV = /TOKEN|SECRET|PASSWORD|API_KEY|REDISCLI_AUTH|PRIVATE_KEY/i;

/** A Redis URL with a password in it (redis://[user]:password@host). */
export const redisUrlHasPassword = (url: unknown) => typeof url === 'string' && /^rediss?:\/\/[^/@]*:[^/@]+@/.test(url);

const isPath = (v: unknown): v is string => typeof v === 'string' && v.startsWith('/');

function mtlsClient(where: string, t: Doc, problems: string[]) {
  if (!t || typeof t !== 'object') return problems.push(`${where}: not set (agents' gRPC needs mutual TLS)`);
  for (const k of ['caFile', 'certFile', 'keyFile']) if (!isPath(t[k])) problems.push(`${where}.${k}: not an absolute file path`);
}

/** Secret and certificate files a config section names (…File keys at any depth but stateFile), with where they are. */
export function filePaths(section: Doc, where: string): { where: string; path: string }[] {
  const out: { where: string; path: string }[] = [];
  const walk = (v: Doc, at: string) => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}[${i}]`));
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if (/File$/.test(k) && k !== 'stateFile' && typeof x === 'string') out.push({ where: `${at}.${k}`, path: x });
        else walk(x, `${at}.${k}`);
      }
  };
  walk(section, where);
  return out;
}

/** Problems with the router section. */
export function routerSecurity(router: Doc, where = 'router'): string[] {
  const problems: string[] = [];
  if (!router) return [`${where}: missing`];
  if (router.auth?.mode !== 'required') problems.push(`${where}.auth.mode is ${router.auth?.mode ?? 'unset (off)'}, not required`);
  if (router.auth?.onStoreError !== 'closed')
    problems.push(`${where}.auth.onStoreError is ${router.auth?.onStoreError ?? 'unset (open)'}, not closed`);
  if (redisUrlHasPassword(router.auth?.redisUrl)) problems.push(`${where}.auth.redisUrl: a password written in the config`);
  if (!isPath(router.controlPlaneTokenFile)) problems.push(`${where}.controlPlaneTokenFile: not set (the router's own credential)`);
  mtlsClient(`${where}.agentTls`, router.agentTls, problems);
  // The router never holds the admin token: at most its SHA-256 (router.adminTokenSha256).
  for (const k of Object.keys(router))
    if (/^admin/i.test(k) && k !== 'adminTokenSha256') problems.push(`${where}.${k}: the router gets no admin credential`);
  return problems;
}

/** Problems with the controlPlane section. */
export function controlPlaneSecurity(cp: Doc, where = 'controlPlane'): string[] {
  const problems: string[] = [];
  if (!cp) return [`${where}: missing`];
  for (const k of ['adminTokenFile', 'routerTokenFile', 'nodeSecretFile'])
    if (!isPath(cp[k])) problems.push(`${where}.${k}: not set (read from a secret file)`);
  if (!isPath(cp.stateFile)) problems.push(`${where}.stateFile: not set (a restart would forget every tenant and key)`);
  mtlsClient(`${where}.agentTls`, cp.agentTls, problems);
  return problems;
}

/** Problems with one agent entry. */
export function agentSecurity(a: Doc, where: string): string[] {
  const problems: string[] = [];
  if (!isPath(a?.nodeTokenFile)) problems.push(`${where}.nodeTokenFile: not set (its node credential)`);
  const t = a?.tls;
  if (!t) problems.push(`${where}.tls: not set (gRPC would accept plaintext callers)`);
  else {
    for (const k of ['certFile', 'keyFile', 'caFile']) if (!isPath(t[k])) problems.push(`${where}.tls.${k}: not an absolute file path`);
    if (t.requireClientCert === false) problems.push(`${where}.tls.requireClientCert is false (callers must present a certificate)`);
  }
  return problems;
}

/** Which sections a config file is for: the whole-stack files have all three. */
export function configSecurity(cfg: Doc, parts: { router?: boolean; controlPlane?: boolean; agents?: boolean }, where: string): string[] {
  const problems: string[] = [];
  if (parts.router) problems.push(...routerSecurity(cfg?.router, `${where}: router`));
  if (parts.controlPlane) problems.push(...controlPlaneSecurity(cfg?.controlPlane, `${where}: controlPlane`));
  if (parts.agents) {
    const agents: Doc[] = Array.isArray(cfg?.agents) ? cfg.agents : [];
    if (agents.length === 0) problems.push(`${where}: no agents`);
    agents.forEach((a, i) => problems.push(...agentSecurity(a, `${where}: agents[${i}] (${a?.id})`)));
  }
  return problems;
}

/** The directory a file path is in. */
export const dirOf = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';

/** Whether `path` lies at or under mount target `target`. */
export const under = (path: string, target: string) => path === target || path.startsWith(target.endsWith('/') ? target : `${target}/`);

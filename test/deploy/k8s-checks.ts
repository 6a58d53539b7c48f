// What deploy/k8s must contain (issue 10, item 3): probes, resources, drain, GPU limits,
// HPA/PDB, network policy; and the trust boundaries of issue 17, item 5 (checkK8sSecurity,
// checkCertManager). Works on the list of parsed manifests.
import { parse as parseYaml } from 'yaml';
import { parseConfig, type Config } from '../../cli/config.ts';
import { agentSecurity, configSecurity, dirOf, filePaths, under, UNSAFE_OVERRIDE } from './config-security.ts';
import { imageIsPinned, type Doc } from './lib.ts';

export const ENGINE_STARTUP_MIN_S = 15 * 60; // model download + load
export const AGENT_SHUTDOWN_BOUND_S = 5; // runAgent: onShutdown(..., drainGraceMs + 5 s)

const find = (docs: Doc[], kind: string, name: string) => docs.find((d) => d?.kind === kind && d?.metadata?.name === name);

export function renderTemplate(text: string, env: Record<string, string>): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_m, n: string) => env[n] ?? '');
}

export function clusterConfigs(docs: Doc[]): { main?: Config; agent?: Config; problems: string[] } {
  const problems: string[] = [];
  const cm = find(docs, 'ConfigMap', 'icp-config');
  if (!cm) return { problems: ['ConfigMap icp-config missing'] };
  let main: Config | undefined;
  let agent: Config | undefined;
  try {
    main = parseConfig(parseYaml(cm.data?.['config.yaml'] ?? ''), 'icp-config/config.yaml');
  } catch (err) {
    problems.push(`config.yaml: ${(err as Error).message}`);
  }
  try {
    agent = parseConfig(
      parseYaml(renderTemplate(cm.data?.['agent.yaml.tmpl'] ?? '', { NODE_ID: 'vllm-0', POD_IP: '10.0.0.7' })),
      'icp-config/agent.yaml.tmpl',
    );
  } catch (err) {
    problems.push(`agent.yaml.tmpl: ${(err as Error).message}`);
  }
  return { main, agent, problems };
}

function probeBudgetSeconds(p: Doc): number {
  return (p?.periodSeconds ?? 10) * (p?.failureThreshold ?? 3) + (p?.initialDelaySeconds ?? 0);
}

function preStopSleepSeconds(c: Doc): number {
  const h = c?.lifecycle?.preStop;
  if (h?.sleep?.seconds !== undefined) return Number(h.sleep.seconds);
  const cmd: string[] | undefined = h?.exec?.command;
  const m = cmd ? /sleep\s+(\d+)/.exec(cmd.join(' ')) : null;
  return m ? Number(m[1]) : 0;
}

/** Deployments whose Pods are engine Pods (vLLM + agent sidecar). */
export function engineDeployments(docs: Doc[]): Doc[] {
  return docs.filter((d) => d?.kind === 'Deployment' && d?.spec?.template?.metadata?.labels?.['icp.dev/role'] === 'engine');
}

function podSpec(d: Doc): Doc {
  return d?.spec?.template?.spec;
}

function portNumber(c: Doc, port: unknown): number | undefined {
  if (typeof port === 'number') return port;
  return c?.ports?.find((p: Doc) => p.name === port)?.containerPort;
}

function selects(selector: Doc, labels: Doc): boolean {
  const ml = selector?.matchLabels ?? {};
  return Object.keys(ml).length > 0 && Object.entries(ml).every(([k, v]) => labels?.[k] === v);
}

export function checkK8s(docs: Doc[]): string[] {
  const problems: string[] = [];
  const { main, agent, problems: cfgProblems } = clusterConfigs(docs);
  problems.push(...cfgProblems);

  // Every container: pinned image, requests and a memory limit.
  for (const d of docs) {
    const spec = podSpec(d);
    if (!spec) continue;
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
      const where = `${d.kind}/${d.metadata?.name}/${c.name}`;
      if (!imageIsPinned(c.image)) problems.push(`${where}: image ${c.image} not pinned`);
      if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory) problems.push(`${where}: no cpu/memory requests`);
      if (!c.resources?.limits?.memory) problems.push(`${where}: no memory limit`);
    }
    if (!(spec.containers ?? []).every((c: Doc) => c.livenessProbe && c.readinessProbe))
      problems.push(`${d.kind}/${d.metadata?.name}: a container without liveness or readiness probe`);
  }

  // ---- router: Deployment + Service + HPA + PDB, drain on SIGTERM ----
  const router = find(docs, 'Deployment', 'icp-router');
  if (!router) problems.push('Deployment icp-router missing');
  else {
    const labels = router.spec.template.metadata.labels;
    const c = podSpec(router).containers.find((x: Doc) => x.name === 'router');
    if (!c) problems.push('icp-router: no router container');
    else {
      if (c.readinessProbe?.httpGet?.path !== '/readyz') problems.push('router: readinessProbe is not /readyz');
      if (c.livenessProbe?.httpGet?.path !== '/healthz') problems.push('router: livenessProbe is not /healthz');
      const grace = main ? main.router.shutdownGraceMs / 1000 : 10;
      const tgps = podSpec(router).terminationGracePeriodSeconds ?? 30;
      if (!(tgps > preStopSleepSeconds(c) + grace))
        problems.push(
          `router: terminationGracePeriodSeconds ${tgps} not longer than preStop ${preStopSleepSeconds(c)} s + shutdownGraceMs ${grace} s`,
        );
      if (portNumber(c, c.readinessProbe?.httpGet?.port) !== main?.router.listen.port)
        problems.push('router: probes do not hit router.listen.port');
    }
    const svc = docs.find((d) => d.kind === 'Service' && selects({ matchLabels: d.spec?.selector }, labels));
    if (!svc) problems.push('router: no Service selects the router Pods');
    const hpa = docs.find(
      (d) =>
        d.kind === 'HorizontalPodAutoscaler' &&
        d.spec?.scaleTargetRef?.kind === 'Deployment' &&
        d.spec?.scaleTargetRef?.name === 'icp-router',
    );
    if (!hpa) problems.push('router: no HorizontalPodAutoscaler');
    else if (!(hpa.spec.minReplicas >= 2)) problems.push('router: HPA minReplicas < 2');
    const pdb = docs.find((d) => d.kind === 'PodDisruptionBudget' && selects(d.spec?.selector, labels));
    if (!pdb) problems.push('router: no PodDisruptionBudget');
    if (router.spec.strategy?.rollingUpdate?.maxUnavailable !== 0)
      problems.push('router: rolling update may take serving Pods down first (maxUnavailable != 0)');
  }

  // ---- engine Pods: vLLM + agent sidecar ----
  const engines = engineDeployments(docs);
  if (engines.length === 0) problems.push('no engine Deployment (Pods labelled icp.dev/role: engine)');
  for (const engine of engines) {
    const spec = podSpec(engine);
    const eng = spec.containers.find((x: Doc) => x.name === 'vllm');
    const ag = spec.containers.find((x: Doc) => x.name === 'agent');
    if (!eng) problems.push('engine Pod: no vllm container');
    if (!ag) problems.push('engine Pod: no agent sidecar');
    if (eng && ag && agent) {
      const gpu = eng.resources?.limits?.['nvidia.com/gpu'];
      if (!(Number(gpu) >= 1)) problems.push('vllm: no nvidia.com/gpu limit');
      if (!imageIsPinned(eng.image) || !String(eng.image).startsWith('vllm/vllm-openai:')) problems.push(`vllm: image ${eng.image}`);
      const ac = agent.agents[0];
      if (!ac) problems.push('agent template has no agent');
      else {
        // Startup sized for model load; readiness = agent /readyz (warm-up); liveness never calls the engine.
        if (!eng.startupProbe) problems.push('vllm: no startupProbe');
        else if (probeBudgetSeconds(eng.startupProbe) < ENGINE_STARTUP_MIN_S)
          problems.push(
            `vllm: startupProbe allows ${probeBudgetSeconds(eng.startupProbe)} s, less than ${ENGINE_STARTUP_MIN_S} s for model load`,
          );
        if (ag.readinessProbe?.httpGet?.path !== '/readyz') problems.push('agent: readinessProbe is not the agent /readyz');
        if (portNumber(ag, ag.readinessProbe?.httpGet?.port) !== ac.httpListen?.port)
          problems.push('agent: readinessProbe not on the agent httpListen port');
        if (ag.livenessProbe?.httpGet?.path !== '/healthz' || portNumber(ag, ag.livenessProbe?.httpGet?.port) !== ac.httpListen?.port)
          problems.push('agent: livenessProbe is not the agent /healthz (which never calls the engine)');
        if (ag.livenessProbe && portNumber(ag, ag.livenessProbe.httpGet?.port) === 8000) problems.push('agent: liveness calls the engine');
        if (new URL(ac.engine.url).hostname !== '127.0.0.1' && new URL(ac.engine.url).hostname !== 'localhost')
          problems.push('agent: engine url is not the Pod-local engine');
        if (!String(ac.advertiseAddress ?? '').startsWith('10.0.0.7:')) problems.push('agent: advertiseAddress is not the Pod IP');
        // Drain: SIGTERM reaches both containers at once. The engine must outlive the agent's drain,
        // and the Pod's grace must outlive both.
        const drain = ac.drainGraceMs / 1000 + AGENT_SHUTDOWN_BOUND_S;
        const engineStop = preStopSleepSeconds(eng);
        if (!(engineStop >= drain))
          problems.push(`vllm: preStop keeps the engine up ${engineStop} s, less than the agent's drain ${drain} s`);
        const tgps = spec.terminationGracePeriodSeconds ?? 30;
        if (!(tgps > engineStop && tgps > drain))
          problems.push(
            `engine Pod: terminationGracePeriodSeconds ${tgps} not longer than the drain (${drain} s) and engine preStop (${engineStop} s)`,
          );
      }
    }
    // One Pod per node identity (node id = certificate CN = node token): a second Pod with the same
    // identity would take over the first one's registration, so replace it, never surge.
    if (engine.spec.replicas !== 1)
      problems.push(`${engine.metadata?.name}: replicas ${engine.spec.replicas}, not 1 (one Pod per node identity)`);
    if (engine.spec.strategy?.type !== 'Recreate')
      problems.push(`${engine.metadata?.name}: strategy is not Recreate (a surge Pod would claim the same node identity)`);
    const labels = engine.spec.template.metadata.labels;
    if (!docs.some((d) => d.kind === 'PodDisruptionBudget' && selects(d.spec?.selector, labels)))
      problems.push('engine: no PodDisruptionBudget');

    // Network policy: only routers (and the control plane, for Drain) reach the agent's gRPC port.
    const np = docs.find(
      (d) => d.kind === 'NetworkPolicy' && (d.spec?.policyTypes ?? ['Ingress']).includes('Ingress') && selects(d.spec?.podSelector, labels),
    );
    if (!np) problems.push('engine: no NetworkPolicy selects the engine Pods');
    else {
      if (!(np.spec.policyTypes ?? []).includes('Ingress')) problems.push('engine NetworkPolicy: not an Ingress policy');
      const routerLabels = router?.spec?.template?.metadata?.labels ?? {};
      const cpLabels = find(docs, 'Deployment', 'icp-control-plane')?.spec?.template?.metadata?.labels ?? {};
      const grpcRules = (np.spec.ingress ?? []).filter((r: Doc) => (r.ports ?? []).some((p: Doc) => p.port === 50051));
      if (grpcRules.length === 0) problems.push('engine NetworkPolicy: gRPC port 50051 not opened to routers');
      for (const r of np.spec.ingress ?? []) {
        if (!r.from || r.from.length === 0) problems.push('engine NetworkPolicy: a rule admits every source');
        if (!r.ports || r.ports.length === 0) problems.push('engine NetworkPolicy: a rule opens every port');
      }
      for (const r of grpcRules) {
        for (const f of r.from ?? []) {
          const ok =
            f.podSelector &&
            !f.namespaceSelector &&
            !f.ipBlock &&
            (selects(f.podSelector, routerLabels) || selects(f.podSelector, cpLabels));
          if (!ok) problems.push(`engine NetworkPolicy: gRPC open to ${JSON.stringify(f)} (only routers and the control plane may)`);
        }
        if (!(r.from ?? []).some((f: Doc) => selects(f.podSelector, routerLabels)))
          problems.push('engine NetworkPolicy: routers cannot reach the gRPC port');
      }
      if ((np.spec.ingress ?? []).some((r: Doc) => (r.ports ?? []).some((p: Doc) => p.port === 8000)))
        problems.push('engine NetworkPolicy: engine port 8000 reachable from outside the Pod');
    }
  }

  // ---- control plane, Redis, config, secret ----
  const cp = find(docs, 'Deployment', 'icp-control-plane');
  if (!cp) problems.push('Deployment icp-control-plane missing');
  if (!docs.some((d) => d.kind === 'Service' && d.metadata?.name === 'icp-control-plane'))
    problems.push('Service icp-control-plane missing');
  if (main && main.controlPlaneUrl !== 'http://icp-control-plane:8081/' && main.controlPlaneUrl !== 'http://icp-control-plane:8081')
    problems.push(`config.yaml: controlPlaneUrl ${main.controlPlaneUrl} is not the control-plane Service`);
  if (main && main.router.listen.host !== '0.0.0.0') problems.push('config.yaml: router listens on loopback only');
  const redis = find(docs, 'StatefulSet', 'icp-redis');
  if (!redis) problems.push('StatefulSet icp-redis missing');
  else if (!(redis.spec.volumeClaimTemplates ?? []).length) problems.push('redis: no persistent volume claim');
  const secrets = docs.filter((d) => d?.kind === 'Secret');
  if (secrets.length === 0) problems.push('no Secret manifests');
  for (const secret of secrets)
    for (const [k, v] of Object.entries({ ...(secret.stringData ?? {}), ...(secret.data ?? {}) }))
      if (v) problems.push(`Secret ${secret.metadata?.name}: ${k} has a value committed`);
  return problems;
}

// ---------- trust boundaries (issue 17, item 5) ----------

/** The Secret keys a container may read, `secret:key` (`secret:*` = every key). Anything else it reads is a problem. */
export function allowedSecretReads(container: string, node?: string): Set<string> {
  switch (container) {
    case 'vllm':
      return new Set(['icp-hf-token:HF_TOKEN']);
    case 'agent':
      return new Set([`icp-node-token-${node}:token`, `icp-tls-${node}:tls.crt`, `icp-tls-${node}:tls.key`, `icp-tls-${node}:ca.crt`]);
    case 'router':
      return new Set([
        'icp-router-token:token',
        'icp-redis:password',
        'icp-provider-keys:*',
        'icp-tls-router:tls.crt',
        'icp-tls-router:tls.key',
        'icp-tls-router:ca.crt',
      ]);
    case 'control-plane':
      return new Set([
        'icp-admin-token:token',
        'icp-router-token:token',
        'icp-node-secret:secret',
        'icp-tls-control-plane:tls.crt',
        'icp-tls-control-plane:tls.key',
        'icp-tls-control-plane:ca.crt',
      ]);
    case 'redis':
      return new Set(['icp-redis:password']);
    default:
      return new Set();
  }
}

/** Every Secret key a container can read: env secretKeyRef, envFrom, and the secret / projected volumes it mounts. */
export function secretReads(spec: Doc, c: Doc): Set<string> {
  const out = new Set<string>();
  for (const e of c.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) out.add(`${ref.name}:${ref.key}`);
  }
  for (const e of c.envFrom ?? []) if (e.secretRef) out.add(`${e.secretRef.name}:*`);
  const mounted = new Set((c.volumeMounts ?? []).map((m: Doc) => m.name));
  const fromSecret = (name: string, items: Doc[] | undefined) => {
    if (!items?.length) out.add(`${name}:*`);
    else for (const i of items) out.add(`${name}:${i.key}`);
  };
  for (const v of spec.volumes ?? []) {
    if (!mounted.has(v.name)) continue;
    if (v.secret) fromSecret(v.secret.secretName, v.secret.items);
    for (const src of v.projected?.sources ?? []) if (src.secret) fromSecret(src.secret.name, src.secret.items);
  }
  return out;
}

/** Where in a container a Secret key appears as a file (mountPath/path), for the files its config names. */
function secretFiles(spec: Doc, c: Doc): Map<string, string> {
  const files = new Map<string, string>();
  for (const m of c.volumeMounts ?? []) {
    const v = (spec.volumes ?? []).find((x: Doc) => x.name === m.name);
    const sources = v?.secret ? [{ secret: { name: v.secret.secretName, items: v.secret.items } }] : (v?.projected?.sources ?? []);
    for (const src of sources)
      for (const i of src.secret?.items ?? []) files.set(`${m.mountPath.replace(/\/$/, '')}/${i.path}`, `${src.secret.name}:${i.key}`);
  }
  return files;
}

const envValue = (c: Doc, name: string) => (c?.env ?? []).find((e: Doc) => e.name === name);

/** The node id an engine Deployment's agent runs as (its render init container's NODE_ID). */
export function nodeIdOf(engine: Doc): string | undefined {
  const init = (podSpec(engine)?.initContainers ?? []).find((c: Doc) => c.name === 'render-agent-config');
  return envValue(init, 'NODE_ID')?.value;
}

/** Does an IPv4 CIDR contain an address? */
function cidrContains(cidr: string, ip: string): boolean {
  const [base = '', bitsText = '32'] = cidr.split('/');
  const toInt = (a: string) => a.split('.').reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
  const bits = Number(bitsText);
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return base.includes('.') && (toInt(base) & mask) === (toInt(ip) & mask);
}

/** An egress rule that lets the Pods reach `ip` (cloud metadata, say). */
function egressAllows(rule: Doc, ip: string): boolean {
  if (!rule.to || rule.to.length === 0) return true; // every destination
  return rule.to.some(
    (t: Doc) => t.ipBlock && cidrContains(t.ipBlock.cidr, ip) && !(t.ipBlock.except ?? []).some((e: string) => cidrContains(e, ip)),
  );
}

const METADATA_IP = '169.254.169.254';

/**
 * Auth on and the limits store failing closed, each container only its own Secret keys, agents and
 * their clients on mTLS with cert-manager certificates whose names match, NetworkPolicies selecting
 * the control plane and the agents (engine egress without cloud metadata), Redis with a password,
 * the state file on a PVC, vLLM's media restriction, no unsafe override.
 */
export function checkK8sSecurity(docs: Doc[]): string[] {
  const problems: string[] = [];
  const cm = find(docs, 'ConfigMap', 'icp-config');
  const main = parseYaml(cm?.data?.['config.yaml'] ?? '') ?? {};
  problems.push(...configSecurity(main, { router: true, controlPlane: true }, 'config.yaml'));
  const certs = docs.filter((d) => d?.kind === 'Certificate');
  const certFor = (secretName: string | undefined) => certs.find((c) => c.spec?.secretName === secretName);
  const serverNames = new Set([main.router?.agentTls?.serverName, main.controlPlane?.agentTls?.serverName]);

  // Each container: only its own Secret keys; the files its config names come from the right Secret.
  for (const d of docs) {
    const spec = podSpec(d);
    if (!spec) continue;
    const node = d.kind === 'Deployment' && engineDeployments([d]).length ? nodeIdOf(d) : undefined;
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
      const where = `${d.kind}/${d.metadata?.name}/${c.name}`;
      if (envValue(c, UNSAFE_OVERRIDE)) problems.push(`${where}: sets ${UNSAFE_OVERRIDE}`);
      const allowed = allowedSecretReads(c.name, node);
      for (const r of secretReads(spec, c)) if (!allowed.has(r)) problems.push(`${where}: can read Secret ${r}, which it does not need`);
      for (const e of c.env ?? [])
        if (/TOKEN|SECRET|PASSWORD|API_KEY|AUTH/.test(e.name) && e.value) problems.push(`${where}: ${e.name} written in the manifest`);
    }
  }
  for (const d of docs)
    for (const v of podSpec(d)?.volumes ?? []) {
      const names = [v.secret?.secretName, ...(v.projected?.sources ?? []).map((s: Doc) => s.secret?.name)];
      if (names.some(Boolean)) {
        // Kubernetes' default 0644 lets every user in the container read the keys.
        const mode = Number((v.secret ?? v.projected)?.defaultMode ?? 0o644);
        if (mode & 0o007)
          problems.push(`${d.kind}/${d.metadata?.name}: volume ${v.name} is world-readable (defaultMode ${mode.toString(8)})`);
        // Secret files belong to root: a non-root service user reads them through the Pod's fsGroup.
        else if (podSpec(d).securityContext?.fsGroup === undefined)
          problems.push(`${d.kind}/${d.metadata?.name}: volume ${v.name} is readable by root only (no fsGroup)`);
      }
      const caCert = certs.find((c) => c.spec?.isCA);
      if (caCert && names.includes(caCert.spec.secretName))
        problems.push(`${d.kind}/${d.metadata?.name}: mounts the CA key Secret ${caCert.spec.secretName}`);
    }

  // A service's secret file paths exist in its container, from the expected Secret (and cert-manager makes it).
  const wantFiles = (d: Doc | undefined, container: string, section: Doc, sectionName: string, cn: string) => {
    if (!d) return;
    const spec = podSpec(d);
    const c = (spec?.containers ?? []).find((x: Doc) => x.name === container);
    if (!c) return problems.push(`${d.metadata?.name}: no ${container} container`);
    const files = secretFiles(spec, c);
    for (const f of filePaths(section, sectionName)) {
      const from = files.get(f.path);
      if (!from) problems.push(`${d.metadata?.name}/${container}: ${f.where} ${f.path} is not mounted from a Secret`);
      else if (/tls\.(crt|key)$|ca\.crt$/.test(f.path)) {
        const cert = certFor(from.split(':')[0]);
        if (!cert) problems.push(`${d.metadata?.name}/${container}: ${f.path} comes from ${from}, which no cert-manager Certificate makes`);
        else if (cert.spec.commonName !== cn)
          problems.push(`${d.metadata?.name}/${container}: its certificate's CN is ${cert.spec.commonName}, want ${cn}`);
      }
    }
  };
  const router = find(docs, 'Deployment', 'icp-router');
  const cp = find(docs, 'Deployment', 'icp-control-plane');
  wantFiles(router, 'router', main.router, 'router', 'router');
  wantFiles(cp, 'control-plane', main.controlPlane, 'controlPlane', 'control-plane');
  for (const [name, cn, usage] of [
    ['router', 'router', 'client auth'],
    ['control-plane', 'control-plane', 'client auth'],
  ] as const) {
    const cert = certs.find((c) => c.spec?.commonName === cn);
    if (!cert) problems.push(`no Certificate with CN ${cn} (the ${name}'s identity agents check)`);
    else if (!(cert.spec.usages ?? []).includes(usage)) problems.push(`Certificate ${cert.metadata?.name}: usages lack ${usage}`);
  }

  // Agents: mTLS with their own certificate (CN = node id, SAN = the name routers check), their own node token.
  const engines = engineDeployments(docs);
  for (const engine of engines) {
    const node = nodeIdOf(engine);
    const name = engine.metadata?.name;
    if (!node) {
      problems.push(`${name}: no NODE_ID for its agent`);
      continue;
    }
    let agentCfg: Doc;
    try {
      agentCfg = parseYaml(renderTemplate(cm?.data?.['agent.yaml.tmpl'] ?? '', { NODE_ID: node, POD_IP: '10.0.0.7' }));
    } catch (err) {
      problems.push(`agent.yaml.tmpl: ${(err as Error).message}`);
      continue;
    }
    const a = agentCfg?.agents?.[0];
    problems.push(...agentSecurity(a, `${name}: agent`));
    wantFiles(engine, 'agent', a, 'agent', node);
    const c = (podSpec(engine).containers ?? []).find((x: Doc) => x.name === 'agent');
    const tlsSecret = c ? secretFiles(podSpec(engine), c).get(String(a?.tls?.certFile))?.split(':')[0] : undefined;
    const cert = certFor(tlsSecret);
    if (cert) {
      const usages = cert.spec.usages ?? [];
      if (!usages.includes('server auth') || !usages.includes('client auth'))
        problems.push(`Certificate ${cert.metadata?.name}: usages need server auth and client auth`);
      for (const sn of serverNames)
        if (!sn) problems.push(`${name}: agents' addresses are Pod IPs, so router and control plane need agentTls.serverName`);
        else if (!(cert.spec.dnsNames ?? []).includes(sn))
          problems.push(`Certificate ${cert.metadata?.name}: dnsNames lack ${sn} (the name routers check)`);
    }
    const vllm = (podSpec(engine).containers ?? []).find((x: Doc) => x.name === 'vllm');
    if (vllm) {
      const args: string[] = (vllm.args ?? []).map(String);
      const i = args.indexOf('--allowed-media-domains');
      const domains = i >= 0 ? args[i + 1] : undefined;
      if (!domains || domains.startsWith('-') || domains === '*')
        problems.push(`${name}/vllm: --allowed-media-domains not set (vLLM fetches any media URL, cloud metadata included)`);
      if (args.some((x) => x.startsWith('--allowed-local-media-path')))
        problems.push(`${name}/vllm: --allowed-local-media-path lets prompts read files`);
      if (envValue(vllm, 'VLLM_MEDIA_URL_ALLOW_REDIRECTS')?.value !== '0')
        problems.push(`${name}/vllm: VLLM_MEDIA_URL_ALLOW_REDIRECTS is not 0`);
    }
  }
  // Engine Deployments stay alike: only the node identity differs.
  const shape = (d: Doc) =>
    JSON.stringify(d)
      .split(nodeIdOf(d) ?? '\u0000')
      .join('NODE');
  for (const e of engines.slice(1))
    if (shape(e) !== shape(engines[0])) problems.push(`${e.metadata?.name}: differs from ${engines[0].metadata?.name} beyond its node id`);

  // The control plane's state: stateFile on a PersistentVolumeClaim.
  const state = main.controlPlane?.stateFile;
  if (cp && typeof state === 'string') {
    const spec = podSpec(cp);
    const c = (spec.containers ?? []).find((x: Doc) => x.name === 'control-plane');
    const m = (c?.volumeMounts ?? []).find((x: Doc) => under(dirOf(state), x.mountPath));
    const v = m && (spec.volumes ?? []).find((x: Doc) => x.name === m.name);
    if (!v?.persistentVolumeClaim) problems.push(`control plane: stateFile ${state} is not on a PersistentVolumeClaim`);
    else if (!find(docs, 'PersistentVolumeClaim', v.persistentVolumeClaim.claimName))
      problems.push(`control plane: PVC ${v.persistentVolumeClaim.claimName} missing`);
    if (cp.spec?.replicas !== 1) problems.push('control plane: more than one replica on one state file');
  }

  // Redis: a password from its Secret, not on the command line; the router's REDIS_URL carries it.
  const redis = find(docs, 'StatefulSet', 'icp-redis');
  const rc = podSpec(redis)?.containers?.find((x: Doc) => x.name === 'redis');
  if (rc) {
    const cmd = [...(rc.command ?? []), ...(rc.args ?? [])].join(' ');
    if (!cmd.includes('requirepass')) problems.push('redis: no requirepass (Redis without a password)');
    if (/--requirepass\s/.test(cmd)) problems.push('redis: the password is on the command line');
    if (!envValue(rc, 'REDISCLI_AUTH')?.valueFrom?.secretKeyRef) problems.push('redis: REDISCLI_AUTH (its password) not from a Secret');
  }
  const rtr = podSpec(router)?.containers?.find((x: Doc) => x.name === 'router');
  if (rtr) {
    const url = String(envValue(rtr, 'REDIS_URL')?.value ?? '');
    const pw = /^rediss?:\/\/[^/@]*:\$\(([A-Z_]+)\)@/.exec(url)?.[1];
    const ref = pw ? envValue(rtr, pw)?.valueFrom?.secretKeyRef : undefined;
    const redisRef = envValue(rc, 'REDISCLI_AUTH')?.valueFrom?.secretKeyRef;
    if (!ref) problems.push(`router: REDIS_URL ${url} carries no password from a Secret`);
    else if (redisRef && (ref.name !== redisRef.name || ref.key !== redisRef.key))
      problems.push('router: its Redis password is not the Secret Redis uses');
    // $(VAR) expands only from variables defined before it.
    const env: Doc[] = rtr.env ?? [];
    if (pw && env.findIndex((e) => e.name === pw) > env.findIndex((e) => e.name === 'REDIS_URL'))
      problems.push(`router: ${pw} defined after REDIS_URL (not expanded)`);
  }

  // NetworkPolicies: default deny; control plane only from agents, routers, operators' ingress, monitoring.
  const nps = docs.filter((d) => d?.kind === 'NetworkPolicy');
  const isIngress = (np: Doc) => (np.spec?.policyTypes ?? ['Ingress']).includes('Ingress');
  const isEgress = (np: Doc) => (np.spec?.policyTypes ?? []).includes('Egress') || np.spec?.egress !== undefined;
  if (!nps.some((np) => isIngress(np) && Object.keys(np.spec?.podSelector ?? {}).length === 0 && !(np.spec?.ingress ?? []).length))
    problems.push('no default-deny ingress NetworkPolicy (podSelector: {}, no rules)');
  const cpLabels = cp?.spec?.template?.metadata?.labels ?? {};
  const routerLabels = router?.spec?.template?.metadata?.labels ?? {};
  const engineLabels = engines.map((e) => e.spec?.template?.metadata?.labels ?? {});
  const cpPolicies = nps.filter((np) => isIngress(np) && selects(np.spec?.podSelector, cpLabels));
  if (cpPolicies.length === 0) problems.push('control plane: no NetworkPolicy selects it');
  for (const np of cpPolicies)
    for (const r of np.spec?.ingress ?? []) {
      if (!r.from?.length) problems.push(`${np.metadata?.name}: a rule admits every source to the control plane`);
      for (const f of r.from ?? []) {
        const pod =
          f.podSelector &&
          !f.namespaceSelector &&
          !f.ipBlock &&
          (selects(f.podSelector, routerLabels) || engineLabels.some((l) => selects(f.podSelector, l)));
        const ns =
          f.namespaceSelector &&
          !f.podSelector &&
          Object.keys(f.namespaceSelector.matchLabels ?? {}).some((k) => /operator-ingress|monitoring/.test(k));
        if (!pod && !ns)
          problems.push(`${np.metadata?.name}: control plane open to ${JSON.stringify(f)} (only agents, routers, operators' ingress)`);
      }
      if (!r.ports?.length) problems.push(`${np.metadata?.name}: a rule opens every control-plane port`);
    }
  for (const [i, l] of engineLabels.entries()) {
    const name = engines[i].metadata?.name;
    const egress = nps.filter((np) => isEgress(np) && selects(np.spec?.podSelector, l));
    if (egress.length === 0) problems.push(`${name}: no egress NetworkPolicy (the engine can reach ${METADATA_IP})`);
    for (const np of egress)
      for (const r of np.spec?.egress ?? []) {
        if (egressAllows(r, METADATA_IP)) problems.push(`${np.metadata?.name}: egress allows ${METADATA_IP} (cloud metadata)`);
        if (!r.ports?.length) problems.push(`${np.metadata?.name}: an egress rule opens every port`);
      }
    if (!nps.some((np) => isIngress(np) && selects(np.spec?.podSelector, l)))
      problems.push(`${name}: no ingress NetworkPolicy selects the agents`);
  }
  return problems;
}

// cert-manager's resources: not in kubernetes-models, so their fields are checked here against
// the cert-manager.io/v1 API (Issuer: selfSigned | ca; Certificate: the fields below).
const CERT_FIELDS = new Set([
  'secretName',
  'commonName',
  'dnsNames',
  'ipAddresses',
  'uris',
  'duration',
  'renewBefore',
  'usages',
  'privateKey',
  'isCA',
  'issuerRef',
  'subject',
  'secretTemplate',
]);
const USAGES = new Set([
  'signing',
  'digital signature',
  'content commitment',
  'key encipherment',
  'key agreement',
  'data encipherment',
  'cert sign',
  'crl sign',
  'server auth',
  'client auth',
]);
const GO_DURATION = /^(\d+(\.\d+)?(h|m|s|ms))+$/;

export function checkCertManager(docs: Doc[]): string[] {
  const problems: string[] = [];
  const issuers = docs.filter((d) => d?.kind === 'Issuer');
  const certs = docs.filter((d) => d?.kind === 'Certificate');
  for (const d of [...issuers, ...certs]) {
    const where = `${d.kind}/${d.metadata?.name}`;
    if (d.apiVersion !== 'cert-manager.io/v1') problems.push(`${where}: apiVersion ${d.apiVersion}, want cert-manager.io/v1`);
    for (const k of Object.keys(d))
      if (!['apiVersion', 'kind', 'metadata', 'spec', '__file'].includes(k)) problems.push(`${where}: unknown field ${k}`);
  }
  for (const i of issuers) {
    const kinds = Object.keys(i.spec ?? {});
    if (kinds.length !== 1 || !['selfSigned', 'ca'].includes(kinds[0] ?? ''))
      problems.push(`Issuer/${i.metadata?.name}: spec must be one of selfSigned, ca`);
    if (i.spec?.ca && !i.spec.ca.secretName) problems.push(`Issuer/${i.metadata?.name}: ca.secretName missing`);
  }
  const issuer = (ref: Doc) => issuers.find((i) => i.metadata?.name === ref?.name && (ref?.kind ?? 'Issuer') === 'Issuer');
  for (const c of certs) {
    const where = `Certificate/${c.metadata?.name}`;
    const spec = c.spec ?? {};
    for (const k of Object.keys(spec)) if (!CERT_FIELDS.has(k)) problems.push(`${where}: unknown field spec.${k}`);
    if (!spec.secretName) problems.push(`${where}: no secretName`);
    if (!spec.commonName && !(spec.dnsNames ?? []).length) problems.push(`${where}: neither commonName nor dnsNames`);
    for (const u of spec.usages ?? []) if (!USAGES.has(u)) problems.push(`${where}: unknown usage ${u}`);
    for (const k of ['duration', 'renewBefore'])
      if (spec[k] !== undefined && !GO_DURATION.test(String(spec[k]))) problems.push(`${where}: ${k} ${spec[k]} is not a duration`);
    if (spec.privateKey && !['RSA', 'ECDSA', 'Ed25519'].includes(spec.privateKey.algorithm))
      problems.push(`${where}: privateKey.algorithm ${spec.privateKey.algorithm}`);
    const iss = issuer(spec.issuerRef);
    if (!iss) problems.push(`${where}: issuerRef ${JSON.stringify(spec.issuerRef)} is no Issuer here`);
    else if (spec.isCA && !iss.spec?.selfSigned)
      problems.push(`${where}: the CA certificate is not issued by the self-signed bootstrap Issuer`);
    else if (!spec.isCA && !iss.spec?.ca) problems.push(`${where}: issued by ${iss.metadata?.name}, not the CA Issuer`);
  }
  // The chain: a self-signed Issuer, a CA Certificate from it, a CA Issuer on that Certificate's Secret.
  const ca = certs.find((c) => c.spec?.isCA);
  if (!issuers.some((i) => i.spec?.selfSigned)) problems.push('no self-signed bootstrap Issuer');
  if (!ca) problems.push('no CA Certificate (isCA: true)');
  else if (!issuers.some((i) => i.spec?.ca?.secretName === ca.spec.secretName))
    problems.push(`no CA Issuer signing with ${ca.spec.secretName}`);
  return problems;
}

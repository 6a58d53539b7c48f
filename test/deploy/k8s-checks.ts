// What deploy/k8s must contain (issue 10, item 3): probes, resources, drain, GPU limits,
// HPA/PDB, network policy. Works on the list of parsed manifests.
import { parse as parseYaml } from 'yaml';
import { parseConfig, type Config } from '../../cli/config.ts';
import { imageIsPinned, type Doc } from './lib.ts';

export const ENGINE_STARTUP_MIN_S = 15 * 60; // model download + load
export const AGENT_SHUTDOWN_BOUND_S = 5; // runAgent: onShutdown(..., drainGraceMs + 5 s)

const find = (docs: Doc[], kind: string, name: string) => docs.find((d) => d?.kind === kind && d?.metadata?.name === name);

function renderTemplate(text: string, env: Record<string, string>): string {
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
      parseYaml(renderTemplate(cm.data?.['agent.yaml.tmpl'] ?? '', { POD_NAME: 'icp-engine-vllm-abc12', POD_IP: '10.0.0.7' })),
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
  const engine = find(docs, 'Deployment', 'icp-engine-vllm');
  if (!engine) problems.push('Deployment icp-engine-vllm missing');
  else {
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
    if (engine.spec.strategy?.rollingUpdate?.maxUnavailable !== 0)
      problems.push('engine: rolling update may take a serving Pod down before the new one is warm');
    const labels = engine.spec.template.metadata.labels;
    if (!docs.some((d) => d.kind === 'PodDisruptionBudget' && selects(d.spec?.selector, labels)))
      problems.push('engine: no PodDisruptionBudget');

    // Network policy: only routers (and the control plane, for Drain) reach the agent's gRPC port.
    const np = docs.find((d) => d.kind === 'NetworkPolicy' && selects(d.spec?.podSelector, labels));
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
  const secret = find(docs, 'Secret', 'icp-secrets');
  if (!secret) problems.push('Secret icp-secrets missing');
  else
    for (const [k, v] of Object.entries({ ...(secret.stringData ?? {}), ...(secret.data ?? {}) }))
      if (v) problems.push(`Secret icp-secrets: ${k} has a value committed`);
  return problems;
}

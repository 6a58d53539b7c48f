// What docker-compose.gpu.yml must contain (issue 10, item 2). Works on the parsed file, or on
// `docker-compose config` output (same shape, normalised).
import { existsSync } from 'node:fs';
import { loadConfig } from '../../cli/config.ts';
import { durationSeconds, imageIsPinned, rootPath, type Doc } from './lib.ts';

export const ENGINES = [
  { service: 'vllm', agent: 'agent-vllm', image: 'vllm/vllm-openai', port: 8000, kind: 'vllm' },
  { service: 'tgi', agent: 'agent-tgi', image: 'ghcr.io/huggingface/text-generation-inference', port: 80, kind: 'tgi' },
] as const;

const MIN_ENGINE_START_PERIOD_S = 10 * 60; // a model download + load takes minutes, not seconds

function gpuDevices(svc: Doc): Doc[] {
  const devices = svc?.deploy?.resources?.reservations?.devices;
  return Array.isArray(devices) ? devices : [];
}

function deviceIds(svc: Doc): string[] {
  return gpuDevices(svc).flatMap((d: Doc) => (Array.isArray(d.device_ids) ? d.device_ids.map(String) : []));
}

function gpuReservationProblems(name: string, svc: Doc): string[] {
  const devices = gpuDevices(svc);
  if (devices.length === 0) return [`${name}: no GPU device reservation (deploy.resources.reservations.devices)`];
  const problems: string[] = [];
  for (const d of devices) {
    if (d.driver !== 'nvidia') problems.push(`${name}: GPU reservation driver is ${d.driver}, not nvidia`);
    if (!Array.isArray(d.capabilities) || !d.capabilities.includes('gpu'))
      problems.push(`${name}: GPU reservation lacks capabilities [gpu]`);
    if (!Array.isArray(d.device_ids) || d.device_ids.length === 0) problems.push(`${name}: GPUs not pinned with device_ids`);
    if (d.count !== undefined) problems.push(`${name}: count and device_ids together`);
  }
  return problems;
}

function dependsOnHealthy(svc: Doc, dep: string): boolean {
  return svc?.depends_on?.[dep]?.condition === 'service_healthy';
}

/** Volume sources mounted by a service (short "src:dst[:mode]" or long form). */
export function volumeMounts(svc: Doc): { source: string; target: string }[] {
  return (svc?.volumes ?? []).map((v: Doc) => {
    if (typeof v === 'string') {
      // As written, sources may be `${VAR:-default}`: take the default.
      const [source = '', target = ''] = v.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}/g, '$1').split(':');
      return { source, target };
    }
    return { source: String(v.source ?? ''), target: String(v.target ?? '') };
  });
}

function commandArgs(svc: Doc): string[] {
  const c = svc?.command;
  return Array.isArray(c) ? c.map(String) : typeof c === 'string' ? c.split(/\s+/) : [];
}

function argAfter(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/**
 * The GPU compose file. `configFile` is the ICP config the services mount (its agents are
 * checked against the compose services).
 */
export function checkGpuCompose(doc: Doc, opts: { configFile?: string; resolved?: boolean } = {}): string[] {
  // `resolved`: docker-compose config output, which inlines env_file contents into environment.
  const configFile = opts.configFile ?? 'deploy/compose/gpu-host.yaml';
  const problems: string[] = [];
  const services = doc?.services ?? {};
  const need = (name: string) => {
    if (!services[name]) problems.push(`service ${name} missing`);
    return services[name];
  };
  const usedGpus = new Map<string, string>();
  const config = loadConfig(rootPath(configFile));

  for (const e of ENGINES) {
    const engine = need(e.service);
    const agent = need(e.agent);
    if (!engine || !agent) continue;
    if (typeof engine.image !== 'string' || !engine.image.startsWith(`${e.image}:`))
      problems.push(`${e.service}: image is ${engine.image}, want ${e.image}:<version>`);
    if (!imageIsPinned(engine.image)) problems.push(`${e.service}: image ${engine.image} is not pinned to a version`);
    problems.push(...gpuReservationProblems(e.service, engine));
    for (const id of deviceIds(engine)) {
      const other = usedGpus.get(id);
      if (other) problems.push(`GPU ${id} given to both ${other} and ${e.service}`);
      usedGpus.set(id, e.service);
    }
    // The agent runs nvidia-smi: it needs the toolkit to inject it, for its engine's GPUs.
    problems.push(...gpuReservationProblems(e.agent, agent));
    if (deviceIds(agent).join(',') !== deviceIds(engine).join(','))
      problems.push(`${e.agent}: device_ids ${deviceIds(agent)} differ from ${e.service}'s ${deviceIds(engine)}`);

    const hc = engine.healthcheck;
    if (!hc || hc.disable) problems.push(`${e.service}: no healthcheck`);
    else {
      const test = Array.isArray(hc.test) ? hc.test.join(' ') : String(hc.test ?? '');
      if (!test.includes(`:${e.port}/health`)) problems.push(`${e.service}: healthcheck does not probe :${e.port}/health`);
      const sp = durationSeconds(hc.start_period);
      if (!(sp >= MIN_ENGINE_START_PERIOD_S))
        problems.push(
          `${e.service}: healthcheck start_period ${hc.start_period} shorter than ${MIN_ENGINE_START_PERIOD_S / 60} min (model download + load)`,
        );
    }
    if (!dependsOnHealthy(agent, e.service)) problems.push(`${e.agent}: depends_on ${e.service} is not condition: service_healthy`);
    if (!dependsOnHealthy(agent, 'control-plane')) problems.push(`${e.agent}: depends_on control-plane is not condition: service_healthy`);

    // Shared Hugging Face cache, token from an env file (never inline).
    const cache = volumeMounts(engine).find((v) => v.source === 'hf-cache' || v.source.endsWith('_hf-cache'));
    if (!cache) problems.push(`${e.service}: does not mount the shared hf-cache volume`);
    if (!opts.resolved) {
      const envFiles = engine.env_file === undefined ? [] : [engine.env_file].flat();
      if (envFiles.length === 0) problems.push(`${e.service}: token not read from an env_file`);
      const env = engine.environment ?? {};
      const envKeys: string[] = Array.isArray(env) ? env.map((x: string) => x.split('=')[0] ?? '') : Object.keys(env);
      for (const k of envKeys)
        if (/TOKEN|SECRET|PASSWORD/i.test(k)) problems.push(`${e.service}: ${k} set inline in environment (use the env file)`);
    } else if (engine.environment?.HF_TOKEN !== 'hf_replace_me') {
      problems.push(`${e.service}: HF_TOKEN does not come from the env file`);
    }

    // The agent's config entry must point at this engine, and drain before compose kills it.
    const id = argAfter(commandArgs(agent), '--id') ?? '';
    const ac = config.agents.find((a) => a.id === id);
    if (!ac) problems.push(`${e.agent}: --id ${id} is not an agent in ${configFile}`);
    else {
      const url = new URL(ac.engine.url);
      if (url.hostname !== e.service || Number(url.port || 80) !== e.port)
        problems.push(`${e.agent}: engine url ${ac.engine.url} is not ${e.service}:${e.port}`);
      if (ac.engine.kind !== e.kind) problems.push(`${e.agent}: engine kind ${ac.engine.kind}, want ${e.kind}`);
      if (ac.gpu.enabled !== true) problems.push(`${e.agent}: gpu.enabled is not true on a GPU host`);
      const grace = durationSeconds(agent.stop_grace_period ?? '10s');
      if (!(grace > ac.drainGraceMs / 1000))
        problems.push(
          `${e.agent}: stop_grace_period ${agent.stop_grace_period ?? '10s (default)'} not longer than drainGraceMs ${ac.drainGraceMs} ms`,
        );
      const engineGrace = durationSeconds(engine.stop_grace_period ?? '10s');
      if (!(engineGrace >= ac.drainGraceMs / 1000)) problems.push(`${e.service}: stop_grace_period shorter than its agent's drain`);
    }
  }

  const router = need('router');
  need('control-plane');
  const redis = need('redis');
  if (router) {
    if (!dependsOnHealthy(router, 'control-plane')) problems.push('router: depends_on control-plane is not service_healthy');
    if (!dependsOnHealthy(router, 'redis')) problems.push('router: depends_on redis is not service_healthy');
    const env = router.environment ?? {};
    if (!(Array.isArray(env) ? env.some((x: string) => x.startsWith('REDIS_URL=')) : 'REDIS_URL' in env))
      problems.push('router: no REDIS_URL');
    const ports = (router.ports ?? []).map((p: Doc) => (typeof p === 'object' ? String(p.target) : String(p).split(':').pop()));
    if (!ports.includes('8080')) problems.push('router: port 8080 not published');
  }
  if (redis) {
    if (!imageIsPinned(redis.image)) problems.push(`redis: image ${redis.image} not pinned`);
    const data = volumeMounts(redis).find((v) => v.target === '/data');
    if (!data || data.source.startsWith('/') || data.source.startsWith('.'))
      problems.push('redis: /data is not on a named (persistent) volume');
    if (!commandArgs(redis).includes('--appendonly')) problems.push('redis: persistence (--appendonly) off');
  }
  for (const v of ['hf-cache', 'redis-data']) if (!doc?.volumes || !(v in doc.volumes)) problems.push(`volume ${v} not declared`);

  // Every service built from this repo runs the same config file and a pinned image.
  for (const [name, svc] of Object.entries<Doc>(services)) {
    if (!imageIsPinned(svc.image)) problems.push(`${name}: image ${svc.image} not pinned`);
    if (!svc.healthcheck && !['grafana'].includes(name)) problems.push(`${name}: no healthcheck`);
    if (svc.build) {
      const cfg = volumeMounts(svc).find((v) => v.target === '/etc/icp/config.yaml');
      if (!cfg) problems.push(`${name}: config not mounted at /etc/icp/config.yaml`);
    }
  }

  // Optional monitoring: Prometheus + Grafana behind a profile, dashboards provisioned from deploy/.
  for (const name of ['prometheus', 'grafana']) {
    const svc = need(name);
    if (svc && !(svc.profiles ?? []).includes('monitoring')) problems.push(`${name}: not in the optional "monitoring" profile`);
  }
  const grafana = services.grafana;
  if (grafana) {
    const mounts = volumeMounts(grafana);
    const prov = mounts.find((m) => m.target === '/etc/grafana/provisioning');
    if (!prov || !prov.source.replace(/^\.\//, '').endsWith('deploy/grafana/provisioning'))
      problems.push('grafana: deploy/grafana/provisioning not mounted');
    const dash = mounts.find((m) => m.target === '/var/lib/grafana/dashboards');
    if (!dash || !dash.source.replace(/^\.\//, '').endsWith('deploy/grafana/dashboards'))
      problems.push('grafana: deploy/grafana/dashboards not mounted');
  }
  for (const name of Object.keys(services)) {
    for (const m of volumeMounts(services[name])) {
      if ((m.source.startsWith('./') || m.source.startsWith('/work') || m.source.startsWith(rootPath('.'))) && !m.source.includes('${')) {
        const p = m.source.startsWith('./') ? rootPath(m.source) : m.source;
        if (!existsSync(p)) problems.push(`${name}: mounts ${m.source}, which does not exist`);
      }
    }
  }
  return problems;
}

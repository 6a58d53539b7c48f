// What docker-compose.gpu.yml must contain (issue 10, item 2; trust boundaries: issue 17, item 5). Works on the parsed file, or on
// `docker-compose config` output (same shape, normalised).
import { existsSync } from 'node:fs';
import { loadConfig } from '../../cli/config.ts';
import { configSecurity, dirOf, filePaths, redisUrlHasPassword, SECRET_ENV, under, UNSAFE_OVERRIDE } from './config-security.ts';
import { durationSeconds, imageIsPinned, readYaml, rootPath, type Doc } from './lib.ts';

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

    // Shared Hugging Face cache; the token comes from its env file (checkComposeSecurity).
    const cache = volumeMounts(engine).find((v) => v.source === 'hf-cache' || v.source.endsWith('_hf-cache'));
    if (!cache) problems.push(`${e.service}: does not mount the shared hf-cache volume`);
    if (opts.resolved && engine.environment?.HF_TOKEN !== 'hf_replace_me')
      problems.push(`${e.service}: HF_TOKEN does not come from hf.env`);

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
    const ports = (router.ports ?? []).map((p: Doc) => (typeof p === 'object' ? String(p.target) : String(p).split(':').pop()));
    if (!ports.includes('8080')) problems.push('router: port 8080 not published');
  }
  if (redis) {
    if (!imageIsPinned(redis.image)) problems.push(`redis: image ${redis.image} not pinned`);
    const data = volumeMounts(redis).find((v) => v.target === '/data');
    if (!data || data.source.startsWith('/') || data.source.startsWith('.'))
      problems.push('redis: /data is not on a named (persistent) volume');
    if (!commandArgs(redis).join(' ').includes('--appendonly')) problems.push('redis: persistence (--appendonly) off');
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

// ---------- trust boundaries (issue 17, item 5) ----------

type Role = 'router' | 'control-plane' | 'agent' | 'vllm' | 'tgi' | 'redis' | 'grafana' | 'other';

/** What each kind of container may be given: env files (in the secrets directory), credential env vars, its own secrets directory. */
const ALLOWED: Record<Role, { envFiles: string[]; env: RegExp | undefined; ownDir: boolean }> = {
  router: { envFiles: ['router.env'], env: /^(REDIS_URL|[A-Z0-9_]*API_KEY)$/, ownDir: true },
  'control-plane': { envFiles: [], env: undefined, ownDir: true },
  agent: { envFiles: [], env: undefined, ownDir: true },
  vllm: { envFiles: ['hf.env'], env: /^HF_TOKEN$/, ownDir: false },
  tgi: { envFiles: ['hf.env'], env: /^HF_TOKEN$/, ownDir: false },
  redis: { envFiles: ['redis.env'], env: /^REDISCLI_AUTH$/, ownDir: false },
  grafana: { envFiles: ['grafana.env'], env: /^GF_SECURITY_ADMIN_PASSWORD$/, ownDir: false },
  other: { envFiles: [], env: undefined, ownDir: false },
};

export function roleOf(svc: Doc): Role {
  const cmd = commandArgs(svc)[0];
  if (svc?.build && cmd === 'router') return 'router';
  if (svc?.build && cmd === 'control-plane') return 'control-plane';
  if (svc?.build && cmd === 'node-agent') return 'agent';
  const image = String(svc?.image ?? '');
  if (image.startsWith('vllm/vllm-openai:')) return 'vllm';
  if (image.startsWith('ghcr.io/huggingface/text-generation-inference:')) return 'tgi';
  if (image.startsWith('redis:')) return 'redis';
  if (image.startsWith('grafana/')) return 'grafana';
  return 'other';
}

function envOf(svc: Doc): Map<string, string> {
  const env = svc?.environment ?? {};
  const m = new Map<string, string>();
  if (Array.isArray(env))
    for (const x of env) {
      const [k = '', ...v] = String(x).split('=');
      m.set(k, v.join('='));
    }
  else for (const [k, v] of Object.entries(env)) m.set(k, v == null ? '' : String(v));
  return m;
}

/** `${VAR:-default}` -> default (as written), trailing slash dropped. */
const defaulted = (s: string) => s.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}/g, '$1').replace(/\/+$/, '');

function networksOf(svc: Doc): string[] {
  const n = svc?.networks;
  if (!n) return ['default'];
  return Array.isArray(n) ? n.map(String) : Object.keys(n);
}

export interface ComposeSecurityOptions {
  /** The ICP config the services mount (raw YAML is checked). */
  configFile: string;
  /** The parsed config, instead of reading configFile (the tests break copies of it). */
  config?: Doc;
  /** Where each service's secrets directory lives: as written, the default of the variable; resolved, the path given. */
  secretsDir: string;
  /** docker-compose config output: env files are inlined into environment, paths absolute. */
  resolved?: boolean;
  /** Engines must share a network with their own agent only. */
  engineNetworks?: boolean;
}

/**
 * Auth on, onStoreError closed, mTLS certificates mounted, Redis with a password, the state file on
 * a named volume, every container only its own secrets, vLLM's media restriction, no unsafe override.
 */
export function checkComposeSecurity(doc: Doc, opts: ComposeSecurityOptions): string[] {
  const problems: string[] = [];
  const services: Record<string, Doc> = doc?.services ?? {};
  const cfg = opts.config ?? readYaml(opts.configFile);
  problems.push(...configSecurity(cfg, { router: true, controlPlane: true, agents: true }, opts.configFile));
  const secretsDir = opts.secretsDir.replace(/\/+$/, '');
  const inSecrets = (src: string) => src === secretsDir || src.startsWith(`${secretsDir}/`);
  const seen = new Set<Role>();

  for (const [name, svc] of Object.entries(services)) {
    const role = roleOf(svc);
    seen.add(role);
    const allowed = ALLOWED[role];
    const env = envOf(svc);
    if (env.has(UNSAFE_OVERRIDE)) problems.push(`${name}: sets ${UNSAFE_OVERRIDE}`);

    // Credentials in the environment: only the role's own, and (as written) only from its env file.
    for (const [k, v] of env) {
      const secretLike = SECRET_ENV.test(k) || (k === 'REDIS_URL' && v !== '');
      if (!secretLike) continue;
      if (!opts.resolved) problems.push(`${name}: ${k} set inline in environment (use its env file)`);
      else if (!allowed.env?.test(k)) problems.push(`${name}: gets ${k}, a credential it does not need`);
    }
    const envFiles = svc.env_file === undefined ? [] : [svc.env_file].flat().map((f: unknown) => defaulted(String(f)));
    for (const f of envFiles) {
      if (!inSecrets(f)) problems.push(`${name}: env file ${f} is outside the secrets directory ${secretsDir}`);
      else if (!allowed.envFiles.includes(f.slice(secretsDir.length + 1)))
        problems.push(`${name}: gets env file ${f.slice(secretsDir.length + 1)}, which is not its own`);
    }
    // Secret directories: its own only (and never the CA's, nor the whole directory).
    const mounts = volumeMounts(svc).map((m) => ({ source: defaulted(m.source), target: m.target }));
    const own = mounts.filter((m) => inSecrets(m.source));
    for (const m of own) {
      const dir = m.source.slice(secretsDir.length + 1);
      if (!allowed.ownDir || dir !== name)
        problems.push(`${name}: mounts ${dir || 'the whole secrets directory'} (${m.source}), not its own secrets`);
      if (!volumeIsReadOnly(svc, m.target)) problems.push(`${name}: secrets at ${m.target} not mounted read-only`);
    }

    // The files its config section names are in its own secrets directory (so mounted), or on a volume.
    const section =
      role === 'router'
        ? filePaths(cfg?.router, 'router')
        : role === 'control-plane'
          ? filePaths(cfg?.controlPlane, 'controlPlane')
          : role === 'agent'
            ? filePaths(
                (cfg?.agents ?? []).find((a: Doc) => a?.id === argAfter(commandArgs(svc), '--id')),
                `agents[${argAfter(commandArgs(svc), '--id')}]`,
              )
            : [];
    if (role === 'agent' && !(cfg?.agents ?? []).some((a: Doc) => a?.id === argAfter(commandArgs(svc), '--id')))
      problems.push(`${name}: its --id is not an agent of ${opts.configFile}`);
    const ownTargets = own.filter((m) => m.source === `${secretsDir}/${name}`).map((m) => m.target);
    for (const f of section) {
      if (!ownTargets.some((t) => under(f.path, t))) problems.push(`${name}: ${f.where} ${f.path} is not in its mounted secrets directory`);
    }
    if (role === 'control-plane') {
      const state = cfg?.controlPlane?.stateFile;
      const vol = typeof state === 'string' ? mounts.find((m) => under(dirOf(state), m.target)) : undefined;
      if (!vol) problems.push(`${name}: controlPlane.stateFile ${state} is not on a mounted volume`);
      else if (vol.source.startsWith('/') || vol.source.startsWith('.') || !(doc?.volumes && vol.source in doc.volumes))
        problems.push(`${name}: controlPlane.stateFile is on ${vol.source}, not a named (persistent) volume`);
      for (const p of svc.ports ?? []) {
        const s = typeof p === 'object' ? `${p.host_ip ?? ''}:${p.published}` : String(p);
        if (!s.startsWith('127.0.0.1:')) problems.push(`${name}: port ${s} published beyond 127.0.0.1`);
      }
    }
    if (role === 'router') {
      if (!opts.resolved && !envFiles.some((f) => f.endsWith('/router.env'))) problems.push(`${name}: REDIS_URL not from its env file`);
      if (opts.resolved && !redisUrlHasPassword(env.get('REDIS_URL'))) problems.push(`${name}: REDIS_URL carries no Redis password`);
    }
    if (role === 'redis') {
      const cmd = commandArgs(svc).join(' ');
      if (!cmd.includes('requirepass')) problems.push(`${name}: no requirepass (Redis without a password)`);
      if (/--requirepass\s/.test(cmd)) problems.push(`${name}: the password is on the command line`);
      if (!opts.resolved && !envFiles.some((f) => f.endsWith('/redis.env'))) problems.push(`${name}: password not from its env file`);
      if (opts.resolved && !env.get('REDISCLI_AUTH')) problems.push(`${name}: REDISCLI_AUTH (the password) not set`);
    }
    if (role === 'vllm') {
      const args = commandArgs(svc);
      const domains = argAfter(args, '--allowed-media-domains');
      if (!domains || domains.startsWith('-') || domains === '*')
        problems.push(`${name}: --allowed-media-domains not set (vLLM fetches any media URL, cloud metadata included)`);
      if (args.some((a) => a.startsWith('--allowed-local-media-path')))
        problems.push(`${name}: --allowed-local-media-path lets prompts read files`);
      if (env.get('VLLM_MEDIA_URL_ALLOW_REDIRECTS') !== '0')
        problems.push(`${name}: VLLM_MEDIA_URL_ALLOW_REDIRECTS is not 0 (redirects bypass the domains)`);
    }
    if (opts.engineNetworks && (role === 'vllm' || role === 'tgi')) {
      const nets = networksOf(svc);
      if (nets.includes('default')) problems.push(`${name}: on the shared default network (only its agent may reach it)`);
      for (const net of nets)
        for (const [other, o] of Object.entries(services)) {
          if (other === name || !networksOf(o).includes(net)) continue;
          const id = argAfter(commandArgs(o), '--id');
          const ac = (cfg?.agents ?? []).find((a: Doc) => a?.id === id);
          const host = ac ? new URL(String(ac.engine?.url)).hostname : undefined;
          if (roleOf(o) !== 'agent' || host !== name) problems.push(`${name}: ${other} shares network ${net} with it`);
        }
    }
  }
  for (const r of ['router', 'control-plane', 'agent', 'redis'] as const) if (!seen.has(r)) problems.push(`no ${r} service`);
  return problems;
}

function volumeIsReadOnly(svc: Doc, target: string): boolean {
  return (svc?.volumes ?? []).some((v: Doc) => {
    if (typeof v !== 'string') return v?.target === target && v?.read_only === true;
    const [, t, mode = ''] = defaulted(v).split(':');
    return t === target && mode.split(',').includes('ro');
  });
}

/**
 * A named volume starts with the owner of its mount point in the image (root if the image lacks
 * it): the control plane, running as `node`, can only write its state file if the image makes
 * that directory for `node`.
 */
export function stateDirProblems(dockerfile: string, mountTarget: string): string[] {
  const re = new RegExp(
    `install\\s+-d\\s+(?:-[mog]\\s+\\S+\\s+)*-o\\s+node\\s+(?:-[mog]\\s+\\S+\\s+)*${mountTarget.replace(/[/.]/g, '\\$&')}(\\s|$)`,
  );
  return dockerfile.split('\n').some((l) => /^\s*RUN\s/.test(l) && re.test(l))
    ? []
    : [`Dockerfile: ${mountTarget} (the control plane's state volume) is not made for the node user: the volume would be root's`];
}

// `npm run admin -- <command>`: drives the control plane's admin API.
// Needs ICP_ADMIN_TOKEN, and the control plane's URL from --url, ICP_CONTROL_PLANE_URL or the
// config file's controlPlaneUrl.
import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG_PATH, loadConfig } from './config.ts';

const USAGE = `usage: npm run admin -- <command> [options]

  tenants list
  tenants create --name NAME [--policy JSON] [--tags JSON]
  tenants update TENANT_ID [--name NAME] [--policy JSON] [--tags JSON] [--disabled true|false]
  keys list [--tenant TENANT_ID]
  keys create TENANT_ID [--name NAME] [--policy JSON]      (prints the key once)
  keys revoke KEY_ID
  batches dead-letters BATCH_ID                          (on a router: --router URL or ICP_ROUTER_URL)
  batches requeue BATCH_ID [--custom-ids ID,ID]         (all dead letters without --custom-ids)

policy JSON fields: allowedModels, maxLane, rpm, tpm, maxConcurrent, monthlyTokenBudget,
monthlyCostBudgetUsd, allowHostedFallback (a key's policy can only narrow its tenant's)

options: --url URL (control plane), --config FILE; the token comes from ICP_ADMIN_TOKEN`;

export async function runAdmin(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s + '\n')): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      config: { type: 'string' },
      name: { type: 'string' },
      policy: { type: 'string' },
      tags: { type: 'string' },
      tenant: { type: 'string' },
      disabled: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      router: { type: 'string' },
      'custom-ids': { type: 'string' },
    },
  });
  const [noun, verb, id] = positionals;
  if (values.help || !noun || !verb) {
    out(USAGE);
    return values.help ? 0 : 2;
  }
  const token = process.env.ICP_ADMIN_TOKEN;
  if (!token) {
    out('ICP_ADMIN_TOKEN is not set');
    return 2;
  }
  // Batch dead letters live on the routers (docs/batch.md); everything else on the control plane.
  const base =
    noun === 'batches'
      ? (values.router ?? process.env.ICP_ROUTER_URL)
      : (values.url ??
        process.env.ICP_CONTROL_PLANE_URL ??
        loadConfig(values.config ?? process.env.ICP_CONFIG ?? DEFAULT_CONFIG_PATH).controlPlaneUrl);
  if (!base && noun === 'batches') {
    out('no router URL: pass --router or set ICP_ROUTER_URL');
    return 2;
  }
  if (!base) {
    out('no control plane URL: pass --url or set ICP_CONTROL_PLANE_URL');
    return 2;
  }
  const json = (v: string | undefined, what: string) => {
    if (v === undefined) return undefined;
    try {
      return JSON.parse(v) as unknown;
    } catch {
      throw new Error(`--${what} is not valid JSON`);
    }
  };
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(base.replace(/\/+$/, '') + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    out(JSON.stringify(await res.json(), null, 2));
    return res.ok ? 0 : 1;
  };
  const need = (v: string | undefined, what: string) => {
    if (!v) throw new Error(`missing ${what}`);
    return v;
  };
  switch (`${noun} ${verb}`) {
    case 'tenants list':
      return call('GET', '/v1/admin/tenants');
    case 'tenants create':
      return call('POST', '/v1/admin/tenants', {
        name: need(values.name, '--name'),
        policy: json(values.policy, 'policy'),
        tags: json(values.tags, 'tags'),
      });
    case 'tenants update':
      return call('PATCH', `/v1/admin/tenants/${need(id, 'TENANT_ID')}`, {
        name: values.name,
        policy: json(values.policy, 'policy'),
        tags: json(values.tags, 'tags'),
        disabled: values.disabled === undefined ? undefined : values.disabled === 'true',
      });
    case 'keys list':
      return call('GET', `/v1/admin/keys${values.tenant ? `?tenant=${encodeURIComponent(values.tenant)}` : ''}`);
    case 'keys create':
      return call('POST', `/v1/admin/tenants/${need(id, 'TENANT_ID')}/keys`, { name: values.name, policy: json(values.policy, 'policy') });
    case 'keys revoke':
      return call('DELETE', `/v1/admin/keys/${need(id, 'KEY_ID')}`);
    case 'batches dead-letters':
      return call('GET', `/v1/admin/batches/${need(id, 'BATCH_ID')}/dead_letters`);
    case 'batches requeue':
      return call('POST', `/v1/admin/batches/${need(id, 'BATCH_ID')}/dead_letters/requeue`, {
        custom_ids: values['custom-ids']?.split(',').filter(Boolean),
      });
    default:
      out(USAGE);
      return 2;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runAdmin(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error((err as Error).message);
      process.exit(2);
    },
  );
}

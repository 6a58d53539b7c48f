// `icp credentials ...`: mint what the services prove themselves with (docs/security.md).
//   generate                    a fresh random secret (admin token, router token, node secret)
//   node-token --id ID          the node token of ID under ICP_NODE_SECRET (or --secret-file)
//   hash-token                  the hex SHA-256 of ICP_ADMIN_TOKEN (router.adminTokenSha256)
// And the embedded default's own set: created on first `npm start`, kept in a local folder.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSecret, mintNodeToken, readSecret, tokenSha256 } from '../common/credentials.ts';

export interface LocalCredentials {
  adminToken: string;
  routerToken: string;
  nodeSecret: string;
  /** True when this call created them (the supervisor prints the admin token once, then). */
  created: boolean;
  dir: string;
}

/** The embedded default's credentials in `dir` (0700; files 0600), created when missing. */
export function localCredentials(dir: string): LocalCredentials {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  let created = false;
  const get = (name: string, prefix: string) => {
    const file = join(dir, name);
    if (!existsSync(file)) {
      writeFileSync(file, `${generateSecret(prefix)}\n`, { mode: 0o600, flag: 'wx' });
      created = true;
    }
    return readFileSync(file, 'utf8').trim();
  };
  const adminToken = get('admin.token', 'icpa');
  const routerToken = get('router.token', 'icpr');
  const nodeSecret = get('node.secret', 'icps');
  return { adminToken, routerToken, nodeSecret, created, dir };
}

/** The environment each process of the stack gets: only its own credentials. */
export function credentialEnv(c: Pick<LocalCredentials, 'adminToken' | 'routerToken' | 'nodeSecret'>) {
  return {
    controlPlane: { ICP_ADMIN_TOKEN: c.adminToken, ICP_ROUTER_TOKEN: c.routerToken, ICP_NODE_SECRET: c.nodeSecret },
    router: { ICP_ROUTER_TOKEN: c.routerToken, ICP_ADMIN_TOKEN_SHA256: tokenSha256(c.adminToken) },
    agent: (id: string) => ({ ICP_NODE_TOKEN: mintNodeToken(c.nodeSecret, id) }),
  };
}

export function runCredentials(args: string[], values: { id?: string; 'secret-file'?: string }): void {
  const out = (s: string): void => void process.stdout.write(`${s}\n`);
  switch (args[0]) {
    case 'generate':
      return out(generateSecret());
    case 'node-token': {
      const secret = readSecret(values['secret-file'], process.env.ICP_NODE_SECRET);
      if (!secret || !values.id) {
        process.stderr.write('usage: icp credentials node-token --id NODE_ID   (node secret from ICP_NODE_SECRET or --secret-file)\n');
        process.exit(2);
      }
      return out(mintNodeToken(secret, values.id));
    }
    case 'hash-token': {
      const token = readSecret(values['secret-file'], process.env.ICP_ADMIN_TOKEN);
      if (!token) {
        process.stderr.write('usage: ICP_ADMIN_TOKEN=... icp credentials hash-token   (or --secret-file FILE)\n');
        process.exit(2);
      }
      return out(tokenSha256(token));
    }
    default:
      process.stderr.write('usage: icp credentials generate | node-token --id NODE_ID | hash-token\n');
      process.exit(2);
  }
}

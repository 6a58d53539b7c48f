// The HTTP routes each service registers, read from fastify's route table of an in-process
// instance (common/http.ts routesOf), so security tests cover a new route without a hand-made list.
import { join } from 'node:path';
import { controlPlaneInputs, parseConfig, routerInputs } from '../../cli/config.ts';
import type { RouteEntry } from '../../common/http.ts';
import { startControlPlane } from '../../control-plane/main.ts';
import { startRouter } from '../../router/main.ts';

export async function enumerateRoutes(dir: string): Promise<{ router: readonly RouteEntry[]; controlPlane: readonly RouteEntry[] }> {
  const config = parseConfig({
    controlPlane: { listen: { host: '127.0.0.1', port: 0 }, capacity: { store: { path: join(dir, 'enum-capacity') } } },
    router: { listen: { host: '127.0.0.1', port: 0 } },
    logging: { level: 'silent' },
  });
  const cp = await startControlPlane(controlPlaneInputs(config, {}));
  const router = await startRouter(routerInputs(config, {}));
  const routes = { router: [...router.routes()], controlPlane: [...cp.routes()] };
  await router.close();
  await cp.close();
  return routes;
}

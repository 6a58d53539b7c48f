// The router's credential towards the control plane (the router token, never the admin token):
// the header every router call to the control plane carries (watches, usage, shadow, lane reports).
import type { RouterProcessConfig } from './config.ts';

export function controlPlaneAuthHeaders(config: Pick<RouterProcessConfig, 'credentials'>): Record<string, string> {
  const token = config.credentials?.controlPlaneToken;
  return token ? { authorization: `Bearer ${token}` } : {};
}

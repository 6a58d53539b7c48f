// Builds the configured providers (credentials are loaded here, once, at start).
import type { ProviderConfig } from '../fallback-config.ts';
import { Credential } from './credentials.ts';
import { OpenAIProvider } from './openai.ts';
import { AzureOpenAIProvider } from './azure-openai.ts';
import { AnthropicProvider } from './anthropic.ts';
import type { Provider } from './types.ts';

export type { Provider, UpstreamDispatch, ProviderRequest } from './types.ts';
export { ProviderError } from './types.ts';

export function createProviders(configs: Record<string, ProviderConfig>, env: NodeJS.ProcessEnv = process.env): Map<string, Provider> {
  const out = new Map<string, Provider>();
  for (const [name, c] of Object.entries(configs)) {
    const credential = Credential.load(name, c, env);
    switch (c.kind) {
      case 'openai':
        out.set(name, new OpenAIProvider({ name, baseUrl: c.baseUrl, credential, firstByteTimeoutMs: c.firstByteTimeoutMs }));
        break;
      case 'azure-openai':
        out.set(
          name,
          new AzureOpenAIProvider({
            name,
            endpoint: c.endpoint,
            apiVersion: c.apiVersion,
            deployments: c.deployments,
            credential,
            firstByteTimeoutMs: c.firstByteTimeoutMs,
          }),
        );
        break;
      case 'anthropic':
        out.set(
          name,
          new AnthropicProvider({
            name,
            baseUrl: c.baseUrl,
            version: c.version,
            defaultMaxTokens: c.defaultMaxTokens,
            credential,
            firstByteTimeoutMs: c.firstByteTimeoutMs,
          }),
        );
        break;
    }
  }
  return out;
}

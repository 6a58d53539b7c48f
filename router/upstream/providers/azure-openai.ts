// Azure OpenAI: the OpenAI wire format behind deployment URLs
// (`{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`), authenticated
// with an `api-key` header. The chain names a model; `deployments` maps it to the deployment
// (by default the deployment is named like the model).
import { OpenAIProvider } from './openai.ts';
import type { Credential } from './credentials.ts';
import type { Provider } from './types.ts';
import { own } from '../../../common/own.ts';

export interface AzureOpenAIOptions {
  name: string;
  endpoint: string;
  apiVersion: string;
  deployments: Record<string, string>;
  credential: Credential;
  firstByteTimeoutMs: number;
}

export class AzureOpenAIProvider extends OpenAIProvider {
  override readonly kind: Provider['kind'] = 'azure-openai';

  constructor(o: AzureOpenAIOptions) {
    const base = o.endpoint.replace(/\/$/, '');
    super(
      { name: o.name, baseUrl: base, credential: o.credential, firstByteTimeoutMs: o.firstByteTimeoutMs },
      {
        url: (op, model) => {
          const path = op === 'COMPLETIONS' ? 'completions' : op === 'EMBEDDINGS' ? 'embeddings' : 'chat/completions';
          const dep = encodeURIComponent(own(o.deployments, model) ?? model);
          return `${base}/openai/deployments/${dep}/${path}?api-version=${encodeURIComponent(o.apiVersion)}`;
        },
        authHeaders: () => ({ 'api-key': o.credential.reveal() }),
      },
    );
  }
}

// Provider credentials come from an environment variable or a file named in config, never from
// the config file itself, so the YAML can be committed and logged. The value is read once at
// start and kept only inside the provider; `scrub` strips it from any text that leaves.
import { readFileSync } from 'node:fs';
import { own } from '../../../common/own.ts';

export interface CredentialSource {
  apiKeyEnv?: string | undefined;
  apiKeyFile?: string | undefined;
}

export class Credential {
  private constructor(private readonly value: string) {}

  static load(provider: string, src: CredentialSource, env: NodeJS.ProcessEnv = process.env): Credential {
    let value: string | undefined;
    if (src.apiKeyFile) {
      try {
        value = readFileSync(src.apiKeyFile, 'utf8').trim();
      } catch (err) {
        throw new Error(
          `provider ${provider}: cannot read apiKeyFile ${src.apiKeyFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
          { cause: err },
        );
      }
    } else if (src.apiKeyEnv) {
      value = own(env, src.apiKeyEnv);
      if (!value) throw new Error(`provider ${provider}: environment variable ${src.apiKeyEnv} is not set`);
    }
    if (!value) throw new Error(`provider ${provider}: set apiKeyEnv or apiKeyFile`);
    return new Credential(value);
  }

  /** The secret, for the one header that needs it. */
  reveal(): string {
    return this.value;
  }

  /** Removes the secret (and a provider's usual masked echo of it) from text bound for logs or clients. */
  scrub(text: string): string {
    let out = text.split(this.value).join('[redacted]');
    if (this.value.length > 8) out = out.split(this.value.slice(0, 8)).join('[redacted]');
    return out;
  }

  // Never serialise the secret by accident (JSON.stringify, util.inspect, pino).
  toJSON(): string {
    return '[redacted]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'Credential([redacted])';
  }
}

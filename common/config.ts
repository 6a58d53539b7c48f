// The generic parts of the one YAML config file: listen addresses, logging, telemetry, and how a
// bad file is reported. Each service owns its section's schema (router/config.ts,
// node-agent/config.ts, control-plane/config.ts); cli/config.ts composes the whole file.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** A host:port to listen on; a section without a fixed port says so with `.prefault({ port })`. */
export const listenSchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535),
});

export const loggingSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Log prompts and completions. Off unless an operator turns it on. */
  logContent: z.boolean().default(false),
});

/** OpenTelemetry traces (docs/observability.md): off unless an endpoint is set here or in OTEL_EXPORTER_OTLP_ENDPOINT. */
export const telemetrySchema = z.strictObject({
  /** OTLP/HTTP base URL, e.g. http://otel-collector:4318 (spans go to <url>/v1/traces). */
  otlpEndpoint: z.url().optional(),
  /** Share of new traces kept, 0-1 (a sampled parent is always followed). */
  sampleRatio: z.number().min(0).max(1).default(1),
});

export type LoggingConfig = z.infer<typeof loggingSchema>;
export type TelemetryConfig = z.infer<typeof telemetrySchema>;

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`invalid config ${file}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Formats zod issues as `field.path: problem`, one per line. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
}

/** Reads and parses a YAML file; an unreadable file or bad YAML is a ConfigError naming it. */
export function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read file: ${(err as Error).message}`]);
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new ConfigError(file, [`not valid YAML: ${(err as Error).message}`]);
  }
}

// Process lifecycle shared by every service: the one "listening" line that supervisors and
// tests wait for, and graceful shutdown on SIGTERM/SIGINT within a bound.
import type { Logger } from './logger.ts';

/** Printed on stdout regardless of log level: `npm start` and the integration tests read it. */
export function announceListening(service: string, url: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ event: 'listening', service, url, ...extra }) + '\n');
}

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits. A second signal (more than a second after
 * the first), or `stop` overrunning `boundMs`, forces the exit: a stuck shutdown must never keep
 * a port bound forever.
 */
export function onShutdown(logger: Logger, stop: (signal: string) => Promise<void>, boundMs = 15_000): void {
  let stoppingSince = 0;
  const handler = (signal: NodeJS.Signals) => {
    if (stoppingSince) {
      // Ctrl-C reaches the whole process group and a supervisor then signals its children too:
      // a repeat within a second is the same request, not an operator insisting.
      if (Date.now() - stoppingSince < 1_000) return;
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stoppingSince = Date.now();
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      logger.error({ boundMs }, 'shutdown overran its bound: exiting');
      process.exit(1);
    }, boundMs);
    timer.unref();
    stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

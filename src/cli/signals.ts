/**
 * Graceful shutdown on the first SIGTERM or SIGINT. Both handlers go as soon as one fires, so
 * any second signal, of either kind, finds only src/cli.ts's default action and ends the
 * process (README "Signals"): a SIGINT after a SIGTERM must not start a second shutdown.
 */
export function onFirstStopSignal(
  shutdown: (signal: NodeJS.Signals) => void,
  target: Pick<NodeJS.EventEmitter, 'on' | 'off'> = process,
): void {
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    handlers.set(signal, () => {
      for (const [s, h] of handlers) target.off(s, h);
      shutdown(signal);
    });
  }
  for (const [s, h] of handlers) target.on(s, h);
}

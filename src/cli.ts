#!/usr/bin/env node
import { main } from './cli/main.ts';

// As PID 1 in a container Node gets no default action for SIGTERM and SIGINT: a signal without
// a handler is ignored, and a stopped pod waits out its grace period for SIGKILL. Commands
// with their own handler (the controller's graceful shutdown) keep it; the others, and a second
// signal, end the process as the default action would (exit status 128 + signal number).
for (const [signal, number] of [
  ['SIGTERM', 15],
  ['SIGINT', 2],
] as const) {
  process.on(signal, () => {
    if (process.listenerCount(signal) === 1) process.exit(128 + number);
  });
}

process.exitCode = await main(process.argv.slice(2));

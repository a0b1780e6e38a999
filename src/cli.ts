#!/usr/bin/env node
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { main } from './cli/main.ts';

// The controller runs for months on a large heap that changes slowly: V8's memory-saving mode
// (a young generation that shrinks when idle, the old one grown by at most 30% between full
// GCs) keeps its RSS near what is live, for more GC work (bench/memory.ts, 10,000 PVCs and
// 100,000 snapshots cached: 230 MiB instead of 249, and back to 210 MiB after the minutely
// report refresh instead of staying up; start-up CPU 7.9 s instead of 6.0). Set here since
// NODE_OPTIONS refuses the flag; V8 reads it at each GC.
if (process.argv.slice(2).find((a) => a !== '--debug') === 'controller')
  setFlagsFromString('--optimize-for-size');

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

// bench/memory.ts: with SNAPCRON_MEMORY_PROBE set, SIGUSR2 prints heap figures to stderr
// (after a full GC too when Node runs with --expose-gc). Off by default.
if (process.env.SNAPCRON_MEMORY_PROBE) {
  process.on('SIGUSR2', () => {
    const figures = () => ({
      ...process.memoryUsage(),
      spaces: Object.fromEntries(
        getHeapSpaceStatistics().map((s) => [s.space_name, [s.space_size, s.space_used_size]]),
      ),
    });
    const before = figures();
    (globalThis as { gc?: () => void }).gc?.();
    process.stderr.write(`snapcron-memory ${JSON.stringify({ before, afterGc: figures() })}\n`);
  });
}

process.exitCode = await main(process.argv.slice(2));

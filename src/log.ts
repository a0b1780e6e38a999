/** Structured JSON logs (pino): a constant message plus schedule/namespace/pvc/snapshot fields. */
import { pino, type Logger } from 'pino';

export function makeLogger(level = process.env.SNAPCRON_LOG_LEVEL ?? 'info', destination = 2): Logger {
  return pino({ level, base: { component: 'snapcron' } }, pino.destination({ fd: destination, sync: true }));
}

/** `snapcron controller` and `snapcron tick`: the commands that talk to a cluster. */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { Kube } from '../kube/client.ts';
import { EventRecorder } from '../kube/events.ts';
import { startWebhook } from '../restore/webhook.ts';
import { Controller } from '../controller/controller.ts';
import { Metrics } from '../controller/metrics.ts';
import { startHttpServer } from '../controller/server.ts';
import { tick } from '../controller/tick.ts';
import { parseDuration } from '../schedule/duration.ts';
import { makeLogger } from '../log.ts';
import { UserError } from './errors.ts';

export const controllerUsage =
  'snapcron controller [--namespace NS] [--metrics-addr :8080] [--lease-namespace NS] [--lease-name snapcron-controller] [--lease-duration 15s] [--retry-period 2s] [--qps 20] [--burst 30] [--identity ID] [--log-level info] [--webhook-addr :9443|off] [--webhook-cert-dir DIR] [--webhook-config-name snapcron-restore] [--webhook-secret-name snapcron-webhook-tls]';
export const tickUsage = 'snapcron tick [--namespace NS] [--qps 20] [--burst 30] [--log-level info]';

const number = (flag: string, text: string): number => {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UserError(`--${flag} "${text}" must be a positive number`, 2);
  return n;
};
/** A flag duration in ms: the CRD's units (s m h d w), plus ms for sub-second periods. */
const seconds = (flag: string, text: string): number => {
  const ms = /^(\d+)ms$/.exec(text);
  if (ms) return Number(ms[1]);
  try {
    return parseDuration(text);
  } catch (err) {
    throw new UserError(`--${flag}: ${(err as Error).message}`, 2);
  }
};

function connect(qps: number, burst: number): Kube {
  try {
    return Kube.fromDefault({ qps, burst });
  } catch (err) {
    throw new UserError(
      `cannot load a kubeconfig (set KUBECONFIG or run in a pod): ${(err as Error).message}`,
    );
  }
}

export async function runController(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      namespace: { type: 'string' },
      'metrics-addr': { type: 'string', default: ':8080' },
      'lease-namespace': { type: 'string' },
      'lease-name': { type: 'string', default: 'snapcron-controller' },
      'lease-duration': { type: 'string', default: '15s' },
      'retry-period': { type: 'string', default: '2s' },
      qps: { type: 'string', default: '20' },
      burst: { type: 'string', default: '30' },
      identity: { type: 'string', default: `${hostname()}-${process.pid}` },
      'log-level': { type: 'string', default: process.env.SNAPCRON_LOG_LEVEL ?? 'info' },
      'webhook-addr': { type: 'string', default: ':9443' },
      'webhook-cert-dir': { type: 'string' },
      'webhook-config-name': { type: 'string', default: 'snapcron-restore' },
      'webhook-secret-name': { type: 'string', default: 'snapcron-webhook-tls' },
      'webhook-dns-names': { type: 'string', default: 'snapcron-webhook.snapcron-system.svc,localhost' },
    },
  });
  const log = makeLogger(values['log-level']);
  const kube = connect(number('qps', values.qps), number('burst', values.burst));
  const metrics = new Metrics();
  const ownNamespace = values['lease-namespace'] ?? kube.defaultNamespace();
  const controller = new Controller({
    kube,
    log,
    metrics,
    namespace: values.namespace,
    lease: {
      namespace: ownNamespace,
      name: values['lease-name'],
      identity: values.identity,
      durationSeconds: Math.max(1, Math.round(seconds('lease-duration', values['lease-duration']) / 1000)),
      retryPeriodMs: seconds('retry-period', values['retry-period']),
    },
  });
  const { server, port } = await startHttpServer(values['metrics-addr'], metrics, () => controller.ready);
  log.info({ port, identity: values.identity }, 'serving /metrics, /healthz, /readyz');
  const done = new Promise<void>((resolve) => {
    const shutdown = (signal: string): void => {
      log.info({ signal }, 'shutting down');
      void controller
        .stop()
        .catch((err: unknown) => log.error({ err }, 'error while stopping'))
        .finally(() => server.close(() => resolve()));
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
  await controller.start();
  let webhook: { server: { close: (cb: () => void) => void } } | undefined;
  if (values['webhook-addr'] !== 'off') {
    webhook = await startWebhook({
      address: values['webhook-addr'],
      certDir: values['webhook-cert-dir'],
      secret: { namespace: ownNamespace, name: values['webhook-secret-name'] },
      dnsNames: values['webhook-dns-names'].split(',').filter(Boolean),
      configName: values['webhook-config-name'],
      kube,
      log,
      events: new EventRecorder(kube, log),
      snapshotsIn: (ns) => controller.snapshotsIn(ns),
    });
  }
  await done;
  await new Promise<void>((resolve) => (webhook ? webhook.server.close(() => resolve()) : resolve()));
  log.info('stopped');
  return 0;
}

export async function runTick(args: string[], out: (line: string) => void): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      namespace: { type: 'string' },
      qps: { type: 'string', default: '20' },
      burst: { type: 'string', default: '30' },
      'log-level': { type: 'string', default: process.env.SNAPCRON_LOG_LEVEL ?? 'warn' },
    },
  });
  const kube = connect(number('qps', values.qps), number('burst', values.burst));
  return tick({ kube, log: makeLogger(values['log-level']), namespace: values.namespace, out });
}

/** `snapcron controller` and `snapcron tick`: the commands that talk to a cluster. */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { DEFAULT_BURST, DEFAULT_QPS, Kube } from '../kube/client.ts';
import { EventRecorder } from '../kube/events.ts';
import { startWebhook } from '../restore/webhook.ts';
import { Controller, DEFAULT_CONCURRENCY } from '../controller/controller.ts';
import type { Logger } from 'pino';
import type { ReportInput } from '../report/build.ts';
import { CloudAudit } from '../report/cloud-audit.ts';
import { reportResponse } from '../report/http.ts';
import { ReportMetrics } from '../report/metrics.ts';

import { Metrics } from '../controller/metrics.ts';
import { startHttpServer } from '../controller/server.ts';
import { tick } from '../controller/tick.ts';
import { formatDuration, parseDuration } from '../schedule/duration.ts';
import { DEFAULT_TICK_INTERVAL_SECONDS } from '../api/warnings.ts';
import { makeLogger } from '../log.ts';
import { ALIBABA_FLAGS, alibabaOptions } from './alibaba-options.ts';
import { UserError } from './errors.ts';
import { readSnapshotInfra } from './report.ts';
import { defineCommand, parseCommand, type Options } from './options.ts';
import { onFirstStopSignal } from './signals.ts';

/** Options controller and tick share: scope, client-side write rate, log level. */
const scope = {
  namespace: {
    type: 'string',
    value: 'NS',
    shownDefault: 'all namespaces',
    description: "only this namespace's SnapshotSchedules, PVCs and snapshots",
  },
} as const satisfies Options;
const rate = {
  qps: {
    type: 'string',
    default: String(DEFAULT_QPS),
    value: 'N',
    description: 'client-side write rate limit, requests per second',
  },
  burst: {
    type: 'string',
    default: String(DEFAULT_BURST),
    value: 'N',
    description: 'writes allowed at once above --qps',
  },
} as const satisfies Options;
const logLevelOption = (fallback: string) =>
  ({
    'log-level': {
      type: 'string',
      value: 'LEVEL',
      shownDefault: `$SNAPCRON_LOG_LEVEL, else ${fallback}`,
      description: 'trace, debug, info, warn or error',
    },
  }) as const satisfies Options;

export const controllerCommand = defineCommand({
  name: 'controller',
  summary:
    'Runs the controller: watches SnapshotSchedules, PVCs and their VolumeSnapshots, takes and prunes snapshots while it holds the leader Lease, and serves metrics and the restore webhook.',
  options: {
    ...scope,
    'metrics-addr': {
      type: 'string',
      default: ':8080',
      value: 'ADDR',
      description: 'serve /metrics, /healthz and /readyz here',
    },
    'lease-namespace': {
      type: 'string',
      value: 'NS',
      shownDefault: "the pod's, else the kubeconfig context's",
      description: 'namespace of the leader Lease and the webhook Secret',
    },
    'lease-name': {
      type: 'string',
      default: 'snapcron-controller',
      value: 'NAME',
      description: 'name of the leader Lease',
    },
    'lease-duration': {
      type: 'string',
      default: '15s',
      value: 'DURATION',
      description: 'how long the lease holds without renewal',
    },
    'retry-period': {
      type: 'string',
      default: '2s',
      value: 'DURATION',
      description: 'how often to renew the lease or try to take it; also in ms, e.g. 500ms',
    },
    ...rate,
    'report-metrics-period': {
      type: 'string',
      default: '60s',
      value: 'DURATION',
      description: "how often the report's alerting gauges are refreshed (while no pass runs)",
    },
    ...ALIBABA_FLAGS,
    'cloud-refresh': {
      type: 'string',
      default: '10m',
      value: 'DURATION',
      description:
        'with --cloud alibaba: how often /report and the snapcron_cloud_* gauges re-read ECS (never per request)',
    },
    concurrency: {
      type: 'string',
      default: String(DEFAULT_CONCURRENCY),
      value: 'N',
      description: 'schedule passes in flight at once (their writes share the --qps budget, in turn)',
    },
    identity: {
      type: 'string',
      value: 'ID',
      shownDefault: 'HOSTNAME-PID',
      description: "this replica's name in the lease",
    },
    ...logLevelOption('info'),
    'webhook-addr': {
      type: 'string',
      default: ':9443',
      value: 'ADDR',
      description: 'serve the restore webhook here; off turns it off',
    },
    'webhook-cert-dir': {
      type: 'string',
      value: 'DIR',
      shownDefault: 'the shared pair in --webhook-secret-name',
      description: 'serve tls.crt/tls.key from here (e.g. cert-manager), reloaded when renewed',
    },
    'webhook-config-name': {
      type: 'string',
      default: 'snapcron-restore',
      value: 'NAME',
      description: 'MutatingWebhookConfiguration whose caBundle is kept',
    },
    'webhook-secret-name': {
      type: 'string',
      default: 'snapcron-webhook-tls',
      value: 'NAME',
      description: 'Secret holding the shared CA and serving certificate',
    },
    'webhook-dns-names': {
      type: 'string',
      default: 'snapcron-webhook.snapcron-system.svc,localhost',
      value: 'NAMES',
      description: 'comma-separated DNS names of the serving certificate',
    },
    'webhook-client-ca': {
      type: 'string',
      value: 'FILE',
      shownDefault: 'any client',
      description:
        "mutual TLS: serve only clients with a certificate signed by a CA in this PEM file (the API server's, from its admission kubeconfig); re-read when it changes",
    },
    'webhook-client-names': {
      type: 'string',
      value: 'NAMES',
      shownDefault: 'any name the CA signed',
      description:
        'with --webhook-client-ca: comma-separated names, one of which the client certificate must carry as CN or DNS SAN',
    },
  },
});

export const tickCommand = defineCommand({
  name: 'tick',
  summary:
    "One pass, e.g. from a CronJob: takes each schedule's due run, prunes, updates status, prints a line per schedule; exits non-zero if anything failed.",
  options: {
    ...scope,
    interval: {
      type: 'string',
      value: 'DURATION',
      shownDefault: formatDuration(DEFAULT_TICK_INTERVAL_SECONDS * 1000),
      description:
        'how often the CronJob runs this tick (its schedule): warns about schedules whose startingDeadlineSeconds is shorter',
    },
    ...rate,
    ...logLevelOption('warn'),
  },
});

const logLevel = (flag: string | undefined, fallback: string): string =>
  flag ?? process.env.SNAPCRON_LOG_LEVEL ?? fallback;

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

interface ClosableServer {
  close(cb: () => void): unknown;
  closeIdleConnections(): void;
  closeAllConnections(): void;
}

/**
 * Stops listening and ends idle keep-alive connections (the API server keeps one open to the
 * webhook, a scraper one to /metrics), so SIGTERM exits at once; busy ones get 5 s.
 */
function closeServer(server: ClosableServer): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), 5000);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** --webhook-client-ca/--webhook-client-names, checked before anything connects. */
function webhookClientAuth(
  caFile: string | undefined,
  names: string | undefined,
): { clientCaFile?: string; clientNames?: string[] } {
  const list = (names ?? '').split(',').filter(Boolean);
  if (list.length > 0 && !caFile)
    throw new UserError(
      '--webhook-client-names needs --webhook-client-ca (the CA that signs those names)',
      2,
    );
  if (!caFile) return {};
  let pem: string;
  try {
    pem = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new UserError(`--webhook-client-ca: cannot read ${caFile}: ${(err as Error).message}`, 2);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new UserError(
      `--webhook-client-ca: ${caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
      2,
    );
  return { clientCaFile: caFile, ...(list.length > 0 ? { clientNames: list } : {}) };
}

export async function runController(args: string[]): Promise<number> {
  const { values } = parseCommand(controllerCommand, args);
  const clientAuth = webhookClientAuth(values['webhook-client-ca'], values['webhook-client-names']);
  const identity = values.identity ?? `${hostname()}-${process.pid}`;
  const log = makeLogger(logLevel(values['log-level'], 'info'));
  const kube = connect(number('qps', values.qps), number('burst', values.burst));
  const metrics = new Metrics();
  metrics.observeWrites(kube.writes);
  const ownNamespace = values['lease-namespace'] ?? kube.defaultNamespace();
  const controller = new Controller({
    kube,
    log,
    metrics,
    namespace: values.namespace,
    lease: {
      namespace: ownNamespace,
      name: values['lease-name'],
      identity,
      durationSeconds: Math.max(1, Math.round(seconds('lease-duration', values['lease-duration']) / 1000)),
      retryPeriodMs: seconds('retry-period', values['retry-period']),
    },
    concurrency: number('concurrency', values.concurrency),
  });
  const cloud = await cloudAudit(values, kube, log, metrics, () => controller.cached());
  const { server, port } = await startHttpServer(
    values['metrics-addr'],
    metrics,
    () => controller.ready,
    (url) =>
      reportResponse(
        url,
        () => controller.cached(),
        undefined,
        cloud && ((r, scope) => cloud.apply(r, scope)),
      ),
  );
  log.info({ port, identity }, 'serving /metrics, /healthz, /readyz');
  // The report's alerting gauges, refreshed every minute while no pass is running (one namespace
  // at a time, only those whose objects changed or whose gauges the clock moved).
  const reportMetrics = new ReportMetrics(metrics.registry);
  let refreshing = false;
  const refresh = setInterval(
    () => {
      if (refreshing || !controller.ready || !controller.idle) return;
      refreshing = true;
      reportMetrics
        .refresh(controller, new Date())
        .catch((err: unknown) => log.error({ err }, 'report metrics refresh failed'))
        .finally(() => (refreshing = false));
    },
    seconds('report-metrics-period', values['report-metrics-period']),
  );
  refresh.unref();
  const done = new Promise<void>((resolve) => {
    const shutdown = (signal: string): void => {
      log.info({ signal }, 'shutting down');
      void controller
        .stop()
        .catch((err: unknown) => log.error({ err }, 'error while stopping'))
        .finally(() => void closeServer(server).then(resolve));
    };
    onFirstStopSignal(shutdown);
  });
  await controller.start();
  cloud?.start();
  let webhook: { server: ClosableServer } | undefined;
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
      snapshotsOf: (ns, pvc) => controller.snapshotsOf(ns, pvc),
      groupSnapshotsOf: (ns) => controller.groupSnapshotsOf(ns),
      restorePvcsOf: (ns) => controller.restorePvcsOf(ns),
      observeAdmission: (seconds, result) => metrics.admission.observe({ result }, seconds),
      ...clientAuth,
    });
  }
  await done;
  await cloud?.stop();
  if (webhook) await closeServer(webhook.server);
  log.info('stopped');
  return 0;
}

/** `--cloud alibaba` on the controller: the ECS audit behind /report, checked before anything connects. */
async function cloudAudit(
  values: Record<string, string | boolean | undefined>,
  kube: Kube,
  log: Logger,
  metrics: Metrics,
  objects: () => Pick<ReportInput, 'schedules' | 'pvcs' | 'snapshots' | 'groupSnapshots'>,
): Promise<CloudAudit | undefined> {
  if (values.cloud === undefined) return undefined;
  if (values.cloud !== 'alibaba') throw new UserError(`--cloud "${String(values.cloud)}": use alibaba`, 2);
  const options = alibabaOptions(values, controllerCommand);
  return new CloudAudit({
    // Loaded only with --cloud: the SDK alone is about 74 MB of RSS.
    api: (await import('../cloud/alibaba-ecs.ts')).ecsApi(options),
    options,
    readInfra: () => readSnapshotInfra(kube, 500),
    objects,
    periodMs: seconds('cloud-refresh', values['cloud-refresh'] as string),
    log: log.child({ cloud: 'alibaba', region: options.regionId }),
    registry: metrics.registry,
  });
}

export async function runTick(args: string[], out: (line: string) => void): Promise<number> {
  const { values } = parseCommand(tickCommand, args);
  const intervalSeconds =
    values.interval === undefined ? undefined : Math.round(seconds('interval', values.interval) / 1000);
  const kube = connect(number('qps', values.qps), number('burst', values.burst));
  const log = makeLogger(logLevel(values['log-level'], 'warn'));
  return tick({ kube, log, namespace: values.namespace, intervalSeconds, out });
}

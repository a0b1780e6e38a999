/**
 * The controller's view of the ECS snapshots behind its VolumeSnapshots (`--cloud alibaba`):
 * refreshed on a period, never per request, so `/report` and the metrics cost no ECS call
 * and a slow or throttled ECS cannot slow a pass. The last good answer is kept through
 * failures and the report says how old it is.
 */
import type { Logger } from 'pino';
import { Gauge, type Registry } from '../controller/prometheus.ts';
import type { EcsApi } from '../cloud/ecs-api.ts';
import { errorMessage } from '../kube/retry.ts';
import {
  auditAlibaba,
  collectAlibaba,
  withAlibaba,
  type AlibabaInput,
  type AlibabaOptions,
  type EcsFacts,
  type VolumeSnapshotContent,
} from './alibaba.ts';
import type { SnapshotClassLike } from '../api/warnings.ts';
import { ALIBABA_FINDING_KINDS, type AlibabaReport, type Report } from './model.ts';

export interface CloudAuditOptions {
  api: EcsApi;
  options: AlibabaOptions;
  /** The cluster-scoped objects the audit needs besides the caches (a paged LIST each). */
  readInfra: () => Promise<{ contents: VolumeSnapshotContent[]; classes: SnapshotClassLike[] }>;
  /** The cached schedules, PVCs and snapshots (the controller's). */
  objects: () => Pick<AlibabaInput, 'schedules' | 'pvcs' | 'snapshots'>;
  periodMs: number;
  log: Logger;
  registry: Registry;
  clock?: () => Date;
}

type Scope = Pick<AlibabaInput, 'now' | 'namespace' | 'schedule'>;

interface Snapshot {
  facts: EcsFacts;
  contents: VolumeSnapshotContent[];
  classes: SnapshotClassLike[];
  at: Date;
}

export class CloudAudit {
  private last: Snapshot | undefined;
  private lastError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private readonly findings: Gauge<'kind'>;
  private readonly refreshed: Gauge;
  private readonly failing: Gauge;
  private readonly clock: () => Date;

  private readonly o: CloudAuditOptions;

  constructor(o: CloudAuditOptions) {
    this.o = o;
    this.clock = o.clock ?? (() => new Date());
    const registers = [o.registry];
    this.findings = new Gauge({
      name: 'snapcron_cloud_findings',
      help: 'Drift between the VolumeSnapshots and the ECS snapshots behind them, by kind (orphan, dangling, stuck, expiring), as of the last ECS refresh.',
      labelNames: ['kind'],
      registers,
    });
    this.refreshed = new Gauge({
      name: 'snapcron_cloud_refresh_timestamp_seconds',
      help: 'Unix time of the last successful ECS refresh (--cloud alibaba); alert when it falls behind.',
      registers,
    });
    this.failing = new Gauge({
      name: 'snapcron_cloud_refresh_failing',
      help: '1 while the last ECS refresh failed (the report keeps the previous answer), else 0.',
      registers,
    });
  }

  /** Refreshes now, then every period; never throws. */
  start(): void {
    const loop = async (): Promise<void> => {
      this.running = this.refresh();
      await this.running;
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.o.periodMs);
    };
    void loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One refresh: the cluster's contents and classes, then ECS, then the gauges. */
  async refresh(): Promise<void> {
    try {
      const infra = await this.o.readInfra();
      const facts = await collectAlibaba(this.o.api, infra, this.o.options);
      this.last = { facts, ...infra, at: this.clock() };
      if (this.lastError !== undefined) this.o.log.info('ECS refresh works again');
      this.lastError = undefined;
      this.failing.set(0);
      this.refreshed.set(this.last.at.getTime() / 1000);
      const { findings } = this.audit({ now: this.clock() }, this.last);
      for (const kind of ALIBABA_FINDING_KINDS)
        this.findings.set({ kind }, findings.filter((f) => f.kind === kind).length);
    } catch (err) {
      const message = errorMessage(err);
      // Said once per failure streak: ECS down for an hour must not flood the log.
      if (this.lastError === undefined)
        this.o.log.warn(
          { err: message, retryInMs: this.o.periodMs },
          'ECS refresh failed; /report keeps the previous ECS answer',
        );
      this.lastError = message;
      this.failing.set(1);
    }
  }

  private audit(scope: Scope, last: Snapshot): ReturnType<typeof auditAlibaba> {
    const input: AlibabaInput = {
      ...this.o.objects(),
      contents: last.contents,
      classes: last.classes,
      ...scope,
    };
    return auditAlibaba(input, last.facts, this.o.options);
  }

  /** The report with the ECS section and drift findings, when an ECS answer exists. */
  apply(report: Report, scope: Scope): Report {
    const last = this.last;
    if (!last) {
      const { regionId, clusterId, driver, pricePerGbMonth } = this.o.options;
      const none = { bytes: 0, monthly: null };
      const waiting: AlibabaReport = {
        regionId,
        clusterId,
        driver,
        snapshots: [],
        orphans: [],
        cost: { pricePerGbMonth, total: none, disks: [], pvcs: [], schedules: [], namespaces: [] },
        warnings: [],
        notes: [
          `no ECS answer yet${this.lastError ? `: ${this.lastError}` : ': the first refresh is under way'}`,
        ],
        calls: { describeSnapshots: 0, describeSnapshotLinks: 0 },
      };
      return { ...report, alibaba: waiting };
    }
    const audit = this.audit(scope, last);
    audit.section.notes.unshift(
      `ECS data as of ${last.at.toISOString().replace(/\.\d{3}Z$/, 'Z')} (refreshed every ${Math.round(this.o.periodMs / 1000)}s)${this.lastError ? `; the latest refresh failed: ${this.lastError}` : ''}`,
    );
    return withAlibaba(report, audit);
  }
}

/**
 * The retention report, built without I/O from the objects a cluster (or files, or the
 * controller's informer cache) holds: which PVCs have no schedule, per schedule and PVC how
 * old the newest good copy is, what retention deletes next and when, what failed or is stuck,
 * and how much is kept. Every verdict is the retention planner's (src/retention/plan.ts).
 *
 * Cost: objects are indexed once (PVCs by namespace and label, snapshots by namespace,
 * schedule and PVC), so a schedule touches only its own snapshots and the PVCs its selector
 * can match; the planner runs once per schedule plus a few times per PVC for the prediction.
 */
import { byCodePoint } from '../api/order.ts';
import { LABEL_SCHEDULE, SNAPSHOT_GROUP, SNAPSHOT_KIND } from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../api/objects.ts';
import type {
  GroupPolicy,
  LabelSelector,
  RetentionPolicy,
  SnapshotSchedule,
} from '../api/types.generated.ts';
import { validateStoredSpec } from '../api/validate.ts';
import {
  asRecoveryPoint,
  groupOfMember,
  groupRestores,
  groupsOf,
  type GroupUnit,
} from '../group/recovery-points.ts';
import { matchesSelector } from '../kube/selector.ts';
import {
  PROTECT_REASONS,
  planRetention,
  type Deletion,
  type DeleteReason,
  type ProtectReason,
  type RetentionPlan,
  type Verdict,
} from '../retention/plan.ts';
import { sourcePvc, stateTiming, type SnapshotState } from '../retention/snapshot-state.ts';
import { parseQuantity } from '../restore/quantity.ts';
import {
  latestFireTime,
  nextFireTime,
  nextFireTimes,
  parseSchedule,
  type CronSchedule,
} from '../schedule/cron.ts';
import { formatDuration } from '../schedule/duration.ts';
import { labelValue } from '../snapshot/naming.ts';
import { describeSelectedBy, formatBytes } from './format.ts';
import {
  FINDING_KINDS,
  REPORT_API_VERSION,
  REPORT_KIND,
  type Finding,
  type FindingKind,
  type GroupReport,
  type MemberSnapshot,
  type PvcReport,
  type Report,
  type ScheduleReport,
  type SelectedBy,
  type SnapshotVerdict,
  type StateCounts,
  type UnprotectedPvc,
} from './model.ts';
import { FireTimeline, predictNextDeletion } from './predict.ts';

export interface ReportInput {
  /** SnapshotSchedules as stored (status included: last and last successful run). */
  schedules: SnapshotSchedule[];
  /** PersistentVolumeClaims: for selection, unprotected PVCs and restores in progress. */
  pvcs: PersistentVolumeClaim[];
  /** VolumeSnapshots: those labelled `snapcron.io/schedule` are the schedules'; members of groups too. */
  snapshots: VolumeSnapshot[];
  /** VolumeGroupSnapshots, for schedules with spec.group (none: such schedules have no recovery points). */
  groupSnapshots?: VolumeGroupSnapshot[] | undefined;
  now: Date;
  /** Only this namespace (objects elsewhere are ignored); unset: every namespace in the input. */
  namespace?: string | undefined;
  /** Only the schedule of this name (the unprotected list is then left empty). */
  schedule?: string | undefined;
  /** Add every snapshot with its verdict and reasons (`pvcs[].snapshots`). */
  plan?: boolean | undefined;
  /**
   * Only what the alerting gauges (ReportMetrics) read: no next-deletion prediction, no
   * protected list, no sizes of PVCs' snapshots and no retention decisions (`nextDeletion` null,
   * `protected` empty, `restoreSizeBytes` 0, every snapshot kept with no reasons, so
   * `oldestKept` is the oldest ready one). The controller's minutely refresh builds these: the
   * prediction runs the planner a few times per PVC, a third of the build's time at 100,000
   * snapshots (bench/report.ts: 146 ms gauges-only, 228 ms in full).
   */
  gaugesOnly?: boolean | undefined;
}

/** Objects without a namespace (hand-written files) are in `default`, as kubectl would create them. */
const nsOf = (o: { metadata?: { namespace?: string | undefined } | undefined }): string =>
  o.metadata?.namespace || 'default';
const nameOf = (o: { metadata?: { name?: string | undefined } | undefined }): string =>
  o.metadata?.name ?? '';
const isoUtc = (t: Date): string => t.toISOString().replace(/\.\d{3}Z$/, 'Z');
const parseTime = (raw: string | Date | undefined): Date | undefined => {
  if (raw === undefined || raw === '') return undefined;
  const t = new Date(raw);
  return Number.isNaN(t.getTime()) ? undefined : t;
};
const byName = byCodePoint;
const zeroCounts = (): StateCounts => ({ ready: 0, pending: 0, stuck: 0, failed: 0 });
const bytesOf = (quantity: string | undefined): number => {
  if (!quantity) return 0;
  try {
    return parseQuantity(quantity);
  } catch {
    return 0;
  }
};
const restoresFromSnapshot = (p: PersistentVolumeClaim): boolean =>
  [p.spec?.dataSource, p.spec?.dataSourceRef].some(
    (ref) => ref?.kind === SNAPSHOT_KIND && (ref.apiGroup ?? '') === SNAPSHOT_GROUP,
  );

/** One namespace's PVCs, indexed for selectors. */
interface NamespacePvcs {
  /** Not being deleted, by name. */
  all: PersistentVolumeClaim[];
  byName: Map<string, PersistentVolumeClaim>;
  /** `key=value` to PVCs (by name). */
  byLabel: Map<string, PersistentVolumeClaim[]>;
  /** Not Bound, restoring from a snapshot: what in-use protection reads. */
  restoring: PersistentVolumeClaim[];
}

function indexPvcs(pvcs: PersistentVolumeClaim[], namespace: string | undefined): Map<string, NamespacePvcs> {
  const out = new Map<string, NamespacePvcs>();
  const sorted = pvcs
    .filter((p) => (namespace === undefined || nsOf(p) === namespace) && !p.metadata.deletionTimestamp)
    .sort((a, b) => byName(nameOf(a), nameOf(b)));
  for (const p of sorted) {
    const ns = nsOf(p);
    let idx = out.get(ns);
    if (!idx) {
      idx = { all: [], byName: new Map(), byLabel: new Map(), restoring: [] };
      out.set(ns, idx);
    }
    idx.all.push(p);
    idx.byName.set(nameOf(p), p);
    for (const [k, v] of Object.entries(p.metadata.labels ?? {})) {
      const key = `${k}=${v}`;
      const list = idx.byLabel.get(key);
      if (list) list.push(p);
      else idx.byLabel.set(key, [p]);
    }
    if (p.status?.phase !== 'Bound' && restoresFromSnapshot(p)) idx.restoring.push(p);
  }
  return out;
}

/**
 * The PVCs a selector picks, as decide picks them: the shortest posting list of its
 * `matchLabels` and `In` requirements narrows the candidates, matchesSelector decides.
 */
function select(
  idx: NamespacePvcs | undefined,
  selector: LabelSelector | undefined,
): PersistentVolumeClaim[] {
  if (!idx) return [];
  let candidates = idx.all;
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) {
    const list = idx.byLabel.get(`${k}=${v}`) ?? [];
    if (list.length < candidates.length) candidates = list;
  }
  for (const req of selector?.matchExpressions ?? []) {
    if (req.operator !== 'In') continue;
    const lists = (req.values ?? []).map((v) => idx.byLabel.get(`${req.key}=${v}`) ?? []);
    const size = lists.reduce((n, l) => n + l.length, 0);
    if (size < candidates.length) candidates = lists.flat().sort((a, b) => byName(nameOf(a), nameOf(b)));
  }
  return candidates.filter((p) => matchesSelector(p.metadata.labels, selector));
}

/** Snapshots by namespace, then `snapcron.io/schedule` label, then source PVC; those being deleted left out. */
function indexSnapshots(
  snapshots: VolumeSnapshot[],
  namespace: string | undefined,
): Map<string, Map<string, Map<string, VolumeSnapshot[]>>> {
  const out = new Map<string, Map<string, Map<string, VolumeSnapshot[]>>>();
  for (const s of snapshots) {
    const label = s.metadata.labels?.[LABEL_SCHEDULE];
    if (label === undefined || s.metadata.deletionTimestamp) continue;
    const ns = nsOf(s);
    if (namespace !== undefined && ns !== namespace) continue;
    let bySchedule = out.get(ns);
    if (!bySchedule) out.set(ns, (bySchedule = new Map<string, Map<string, VolumeSnapshot[]>>()));
    let byPvc = bySchedule.get(label);
    if (!byPvc) bySchedule.set(label, (byPvc = new Map<string, VolumeSnapshot[]>()));
    const pvc = sourcePvc(s) ?? '';
    const list = byPvc.get(pvc);
    const own = s.metadata.namespace ? s : { ...s, metadata: { ...s.metadata, namespace: ns } };
    if (list) list.push(own);
    else byPvc.set(pvc, [own]);
  }
  return out;
}

/** What a schedule with spec.group reads, per namespace: its VolumeGroupSnapshots and their members. */
interface GroupIndex {
  /** Not being deleted, by `snapcron.io/schedule` label. */
  bySchedule: Map<string, VolumeGroupSnapshot[]>;
  /** Member VolumeSnapshots by group name. */
  members: Map<string, VolumeSnapshot[]>;
}

function indexGroups(
  groupSnapshots: VolumeGroupSnapshot[],
  snapshots: VolumeSnapshot[],
  namespace: string | undefined,
): { byNamespace: Map<string, GroupIndex>; memberOf: Map<string, string> } {
  const byNamespace = new Map<string, GroupIndex>();
  const get = (ns: string): GroupIndex => {
    let idx = byNamespace.get(ns);
    if (!idx) byNamespace.set(ns, (idx = { bySchedule: new Map(), members: new Map() }));
    return idx;
  };
  for (const g of groupSnapshots) {
    const label = g.metadata.labels?.[LABEL_SCHEDULE];
    if (label === undefined || g.metadata.deletionTimestamp) continue;
    const ns = nsOf(g);
    if (namespace !== undefined && ns !== namespace) continue;
    const own = g.metadata.namespace ? g : { ...g, metadata: { ...g.metadata, namespace: ns } };
    const idx = get(ns);
    const list = idx.bySchedule.get(label);
    if (list) list.push(own);
    else idx.bySchedule.set(label, [own]);
  }
  // `namespace/member` to its group: a restore from a member reads (and protects) the group.
  const memberOf = new Map<string, string>();
  for (const s of snapshots) {
    const group = groupOfMember(s);
    if (group === undefined) continue;
    const ns = nsOf(s);
    memberOf.set(`${ns}/${nameOf(s)}`, group);
    if (namespace !== undefined && ns !== namespace) continue;
    const members = get(ns).members;
    const list = members.get(group);
    if (list) list.push(s);
    else members.set(group, [s]);
  }
  return { byNamespace, memberOf };
}

/** spec.group when it is one (an invalid schedule's may not be). */
const groupPolicyOf = (spec: Partial<SnapshotSchedule['spec']> | undefined): GroupPolicy | undefined => {
  const g = spec?.group as unknown;
  return g && typeof g === 'object' && ['Schedule', 'Label'].includes((g as GroupPolicy).by)
    ? (g as GroupPolicy)
    : undefined;
};

const memberOfRecoveryPoint = (m: VolumeSnapshot): MemberSnapshot => ({
  pvc: sourcePvc(m) ?? '',
  name: nameOf(m),
  readyToUse: m.status?.readyToUse === true,
  restoreSize: m.status?.restoreSize ?? null,
  error: m.status?.error?.message ?? null,
});

/** A schedule's interval and next fire time, and the span of `now` they hold for: [last fire, next fire). */
interface FireSpan {
  from: number;
  until: number;
  intervalMs: number;
  next: Date | undefined;
}

/**
 * Per parsed schedule (parseSchedule hands out one object per expression and zone, so the
 * schedules sharing one share this): the metrics refresh asks every minute for every schedule,
 * and walking the calendar back for the last two fire times was a tenth of what it allocated.
 */
const fireSpans = new WeakMap<CronSchedule, FireSpan>();

/**
 * The gap between the two most recent fire times at or before `now` (else the next two), and the
 * first fire time after `now`.
 */
export function fireFacts(
  cron: CronSchedule,
  now: Date,
): { intervalMs: number | undefined; next: Date | undefined; until: number } {
  const t = now.getTime();
  const span = fireSpans.get(cron);
  if (span && span.from <= t && t < span.until) return span;
  const last = latestFireTime(cron, 0, now);
  const previous = last && latestFireTime(cron, 0, last.getTime() - 1);
  if (!last || !previous) {
    const [a, b] = nextFireTimes(cron, now, 2);
    return {
      intervalMs: a && b ? b.getTime() - a.getTime() : undefined,
      next: a,
      until: a?.getTime() ?? Infinity,
    };
  }
  const next = nextFireTime(cron, now);
  // No fire time falls in (last, next): every instant of [last, next) has these answers.
  const facts: FireSpan = {
    from: last.getTime(),
    until: next?.getTime() ?? Infinity,
    intervalMs: last.getTime() - previous.getTime(),
    next,
  };
  fireSpans.set(cron, facts);
  return facts;
}

interface ScheduleFacts {
  schedule: SnapshotSchedule;
  namespace: string;
  name: string;
  errors: { path: string; message: string }[];
  /** The validated schedule (defaults applied); undefined when invalid. */
  valid: SnapshotSchedule | undefined;
  selected: PersistentVolumeClaim[];
  /** With spec.group: the selected PVCs' groups, as decide forms them. */
  group?: { policy: GroupPolicy; groups: GroupUnit[]; unlabeled: Set<string> } | undefined;
}

/** Builds the report. Pure: the same objects and `now` give the same report. */
export function buildReport(input: ReportInput): Report {
  return build(input, undefined);
}

/**
 * A gauges-only report, and until when its gauges hold: the first instant after `now` at which
 * the same objects could give another interval, stale or stuck count (a fire time passing, a
 * newest copy growing older than twice the interval, a snapshot turning stuck or failed). The
 * controller's refresh builds a namespace again only when its objects changed or that time came.
 */
export function buildGaugeReport(input: Omit<ReportInput, 'gaugesOnly' | 'plan'>): {
  report: Report;
  until: number;
} {
  const validity = { until: Infinity };
  const report = build({ ...input, gaugesOnly: true }, validity);
  return { report, until: validity.until };
}

function build(input: ReportInput, validity: { until: number } | undefined): Report {
  const { now } = input;
  const nowMs = now.getTime();
  /** The gauges may change by the clock alone at `t` (epoch ms). */
  const changesAt = (t: number | undefined): void => {
    if (validity && t !== undefined && t > nowMs && t < validity.until) validity.until = t;
  };
  const pvcIndex = indexPvcs(input.pvcs, input.namespace);
  const snapIndex = indexSnapshots(input.snapshots, input.namespace);
  let groupIndex: ReturnType<typeof indexGroups> | undefined;
  const groupsIn = (): ReturnType<typeof indexGroups> =>
    (groupIndex ??= indexGroups(input.groupSnapshots ?? [], input.snapshots, input.namespace));
  /** Member VolumeSnapshots per group row, for the totals. */
  const memberCounts = new Map<GroupReport, number>();

  const facts: ScheduleFacts[] = input.schedules
    .filter((s) => input.namespace === undefined || nsOf(s) === input.namespace)
    .sort((a, b) => byName(nsOf(a), nsOf(b)) || byName(nameOf(a), nameOf(b)))
    .map((schedule) => {
      const namespace = nsOf(schedule);
      const { errors, schedule: valid } = validateStoredSpec(schedule);
      let selected: PersistentVolumeClaim[] = [];
      const spec = (valid ?? schedule).spec as Partial<SnapshotSchedule['spec']> | undefined;
      try {
        selected = select(pvcIndex.get(namespace), spec?.claimSelector);
      } catch {
        // An invalid schedule's selector may not be one: it selects nothing.
      }
      const policy = groupPolicyOf(spec);
      const grouped = policy && groupsOf(policy, spec?.claimSelector, namespace, selected);
      const group = policy &&
        grouped && { policy, groups: grouped.groups, unlabeled: new Set(grouped.unlabeled) };
      return { schedule, namespace, name: nameOf(schedule), errors, valid, selected, group };
    });

  const findings: Finding[] = [];
  const reported = input.schedule === undefined ? facts : facts.filter((f) => f.name === input.schedule);
  const schedules = reported.map((f) => scheduleReport(f, input, pvcIndex, snapIndex, findings));

  // Unprotected: PVCs that no schedule taking snapshots selects.
  const unprotected: UnprotectedPvc[] = [];
  if (input.schedule === undefined) {
    const active = new Set<PersistentVolumeClaim>();
    const idle = new Map<PersistentVolumeClaim, SelectedBy[]>();
    for (const f of facts) {
      const why = !f.valid ? 'invalid' : f.valid.spec.suspend === true ? 'suspended' : undefined;
      for (const p of f.selected) {
        // Grouped by a label the PVC lacks: decide leaves it out of every group.
        const by: SelectedBy | undefined =
          why !== undefined
            ? { schedule: f.name, why }
            : f.group?.unlabeled.has(nameOf(p))
              ? { schedule: f.name, why: 'not-in-group', labelKey: f.group.policy.labelKey ?? '' }
              : undefined;
        if (by === undefined) active.add(p);
        else idle.set(p, [...(idle.get(p) ?? []), by]);
      }
    }
    for (const [namespace, idx] of [...pvcIndex].sort(([a], [b]) => byName(a, b))) {
      for (const p of idx.all) {
        if (active.has(p)) continue;
        const pvc = nameOf(p);
        const selectedBy = idle.get(p) ?? [];
        unprotected.push({
          namespace,
          pvc,
          phase: p.status?.phase ?? null,
          storage: p.spec?.resources?.requests?.storage ?? null,
          selectedBy,
        });
        const only = selectedBy.map(describeSelectedBy).join(' and ');
        const ungrouped = selectedBy.find((s) => s.why === 'not-in-group');
        const fix = selectedBy.some((s) => s.why === 'invalid')
          ? 'fix the schedule (snapcron validate -f FILE)'
          : selectedBy.some((s) => s.why === 'suspended')
            ? 'resume the schedule (suspend: false)'
            : `label the PVC ${ungrouped?.why === 'not-in-group' ? ungrouped.labelKey : ''}=<group> (the schedule takes one VolumeGroupSnapshot per value)`;
        findings.push({
          kind: 'unprotected',
          namespace,
          schedule: null,
          pvc,
          snapshots: [],
          message: only
            ? `PVC ${namespace}/${pvc} is selected only by ${only}, so nothing snapshots it: ${fix} or select the PVC from an active schedule`
            : `PVC ${namespace}/${pvc} is selected by no SnapshotSchedule, so nothing snapshots it: label it for a schedule's claimSelector or create a schedule for it`,
        });
      }
    }
  }

  const order = new Map(FINDING_KINDS.map((k, i) => [k, i]));
  findings.sort(
    (a, b) =>
      (order.get(a.kind as FindingKind) ?? 0) - (order.get(b.kind as FindingKind) ?? 0) ||
      byName(a.namespace, b.namespace) ||
      byName(a.schedule ?? '', b.schedule ?? '') ||
      byName(a.pvc ?? '', b.pvc ?? '') ||
      byName(a.group ?? '', b.group ?? ''),
  );

  const findingCounts = Object.fromEntries(FINDING_KINDS.map((k) => [k, 0])) as Record<FindingKind, number>;
  for (const f of findings) findingCounts[f.kind as FindingKind]++;
  const snapshotTotals = zeroCounts();
  let restoreSizeBytes = 0;
  let stalePvcs = 0;
  let groupTotals: Report['totals']['groups'];
  for (const s of schedules) {
    for (const k of Object.keys(snapshotTotals) as SnapshotState[]) snapshotTotals[k] += s.counts[k];
    restoreSizeBytes += s.restoreSizeBytes;
    for (const p of s.pvcs) if (p.stale) stalePvcs++;
    if (s.groups) {
      groupTotals ??= { groups: 0, staleGroups: 0, recoveryPoints: zeroCounts(), memberSnapshots: 0 };
      groupTotals.groups += s.groups.length;
      for (const k of Object.keys(snapshotTotals) as SnapshotState[])
        groupTotals.recoveryPoints[k] += s.counts[k];
      for (const g of s.groups) {
        if (g.stale) groupTotals.staleGroups++;
        groupTotals.memberSnapshots += memberCounts.get(g) ?? 0;
      }
    }
  }
  let pvcCount = 0;
  for (const idx of pvcIndex.values()) pvcCount += idx.all.length;

  return {
    apiVersion: REPORT_API_VERSION,
    kind: REPORT_KIND,
    generatedAt: isoUtc(now),
    scope: { namespace: input.namespace ?? null, schedule: input.schedule ?? null },
    unprotected,
    schedules,
    findings,
    totals: {
      schedules: schedules.length,
      suspendedSchedules: schedules.filter((s) => s.suspended).length,
      invalidSchedules: schedules.filter((s) => s.errors.length > 0).length,
      pvcs: pvcCount,
      unprotectedPvcs: unprotected.length,
      stalePvcs,
      snapshots: snapshotTotals,
      restoreSizeBytes,
      findings: findingCounts,
      ...(groupTotals ? { groups: groupTotals } : {}),
    },
  };

  function scheduleReport(
    f: ScheduleFacts,
    inp: ReportInput,
    pvcs: Map<string, NamespacePvcs>,
    snaps: Map<string, Map<string, Map<string, VolumeSnapshot[]>>>,
    out: Finding[],
  ): ScheduleReport {
    const { namespace, name, valid, schedule } = f;
    const spec = (valid ?? schedule).spec as Partial<SnapshotSchedule['spec']> | undefined;
    const status = schedule.status ?? {};
    const suspended = spec?.suspend === true;
    const timeZone = typeof spec?.timeZone === 'string' ? spec.timeZone : 'UTC';
    const key = `${namespace}/${name}`;
    let cron: CronSchedule | undefined;
    if (valid) cron = parseSchedule(valid.spec.schedule, valid.spec.timeZone ?? 'UTC');
    const fires = cron ? fireFacts(cron, now) : undefined;
    changesAt(fires?.until);
    const intervalMs = fires?.intervalMs;
    const next = suspended ? undefined : fires?.next;

    if (!valid) {
      out.push({
        kind: 'invalid',
        namespace,
        schedule: name,
        pvc: null,
        snapshots: [],
        message: `SnapshotSchedule ${key} is invalid, so it takes and deletes no snapshots: ${f.errors
          .map((e) => `${e.path}: ${e.message}`)
          .join('; ')}; fix it (snapcron validate -f FILE lists every error)`,
      });
    }

    // This schedule's snapshots by unit (PVC, or with spec.group the group key); one planner pass
    // over all of them. With spec.group they are its recovery points, each VolumeGroupSnapshot
    // seen with its members as the controller sees it (src/group), so the verdicts are its own.
    const nsPvcs = pvcs.get(namespace);
    let byUnit: Map<string, VolumeSnapshot[]>;
    let restoring = nsPvcs?.restoring ?? [];
    let members = new Map<string, VolumeSnapshot[]>();
    if (f.group) {
      const groups = groupsIn();
      const idx = groups.byNamespace.get(namespace);
      members = idx?.members ?? members;
      byUnit = new Map();
      for (const g of idx?.bySchedule.get(labelValue(name)) ?? []) {
        const point = asRecoveryPoint(g, members.get(nameOf(g)));
        const unit = sourcePvc(point) ?? '';
        const list = byUnit.get(unit);
        if (list) list.push(point);
        else byUnit.set(unit, [point]);
      }
      restoring = groupRestores(restoring, (ns, snapshot) => groups.memberOf.get(`${ns}/${snapshot}`));
    } else {
      byUnit = snaps.get(namespace)?.get(labelValue(name)) ?? new Map<string, VolumeSnapshot[]>();
    }
    const own: VolumeSnapshot[] = [];
    for (const list of byUnit.values()) own.push(...list);
    // An invalid schedule's retention does not run: its snapshots are all kept, in their states.
    const retention: RetentionPolicy = valid ? valid.spec.retention : keepAll(spec?.retention);
    const plan: RetentionPlan = planRetention({
      scheduleName: name,
      retention,
      timeZone: valid ? timeZone : 'UTC',
      snapshots: own,
      pvcs: restoring,
      now,
      statesOnly: inp.gaugesOnly,
    });
    changesAt(plan.changesAt);
    const verdictsByUnit = new Map<string, Verdict[]>();
    for (const v of plan.verdicts) {
      const list = verdictsByUnit.get(v.pvc);
      if (list) list.push(v);
      else verdictsByUnit.set(v.pvc, [v]);
    }
    const timeline = cron && !suspended ? new FireTimeline(cron, now) : undefined;
    const created = parseTime(schedule.metadata?.creationTimestamp) ?? new Date(0);
    // PVCs created together (a StatefulSet, an import) ask for the same first fire time.
    const firstFires = new Map<number, Date | undefined>();
    const firstFireAfter = (c: CronSchedule, since: Date): Date | undefined => {
      const t = since.getTime();
      if (!firstFires.has(t)) firstFires.set(t, nextFireTime(c, since));
      return firstFires.get(t);
    };

    /** How one unit (a PVC, or a group) is described in findings. */
    interface Unit {
      name: string;
      selected: boolean;
      /** Bound: runs take it. */
      bound: boolean;
      /** Some data to protect exists: staleness is measured (a PVC: Bound; a group: a member Bound). */
      watched: boolean;
      /** When it came to be (the PVC, the group's oldest member), for "fired since". */
      since: Date;
      /** `PVC ns/x` or `group g in ns (PVCs a, b)`. */
      subject: string;
      /** `snapshot` or `recovery point`. */
      noun: string;
      /** Appended to a stale finding: why the unit is not taken. */
      note: string;
      target: Pick<Finding, 'pvc' | 'group'>;
      /** Restore size per snapshot name, as text and bytes. */
      sizes: Map<string, { text: string; bytes: number }>;
    }

    let restoreSizeBytes = 0;
    const unitReport = (
      u: Unit,
    ): Omit<PvcReport, 'pvc' | 'phase' | 'snapshots'> & { verdicts: Verdict[] } => {
      const verdicts = verdictsByUnit.get(u.name) ?? [];
      const counts = zeroCounts();
      for (const v of verdicts) counts[v.state]++;
      let bytes = 0;
      for (const size of u.sizes.values()) bytes += size.bytes;
      restoreSizeBytes += bytes;
      const newest = verdicts.find((v) => v.state === 'ready');
      const oldestKept = verdicts.findLast((v) => v.state === 'ready' && v.verdict === 'keep');
      const takesRuns = valid !== undefined && u.selected && u.bound && !suspended;
      const { noun } = u;

      // Stale: the newest good copy is older than twice the interval, or there is none
      // although the schedule has fired since both it and the unit exist.
      let stale = false;
      let staleMessage = '';
      if (cron && intervalMs !== undefined && u.selected && u.watched) {
        const ref = `${u.subject} (schedule ${key}${suspended ? ', suspended' : ''})`;
        if (newest) {
          const age = nowMs - newest.time.getTime();
          if (age > 2 * intervalMs) {
            stale = true;
            staleMessage = `${ref}: the newest ready ${noun} ${newest.name} is ${formatDuration(age)} old, more than twice the schedule's interval of ${formatDuration(intervalMs)}`;
          } else changesAt(newest.time.getTime() + 2 * intervalMs + 1);
        } else {
          const since = u.since > created ? u.since : created;
          const fired = firstFireAfter(cron, since);
          if (fired && fired.getTime() <= nowMs) {
            stale = true;
            staleMessage = `${ref}: no ready ${noun}, although the schedule has fired for it (first at ${isoUtc(fired)})`;
          } // else it turns stale at a fire time, no sooner than the next one (fires.until).
        }
        if (stale) {
          out.push({
            kind: 'stale',
            namespace,
            schedule: name,
            ...u.target,
            snapshots: newest ? [newest.name] : [],
            message: `${staleMessage}${u.note}${suspended ? ': resume the schedule (suspend: false)' : `: check the schedule's events (kubectl describe snapshotschedule ${name} -n ${namespace}) and the ${noun === 'snapshot' ? 'snapshots' : 'VolumeGroupSnapshots'}' (kubectl describe ${noun === 'snapshot' ? 'volumesnapshot' : 'volumegroupsnapshot'} -n ${namespace})`}`,
          });
        }
      }

      const describe = noun === 'snapshot' ? 'volumesnapshot' : 'volumegroupsnapshot';
      const failed = verdicts.filter((v) => v.state === 'failed');
      if (failed.length > 0) {
        const latest = failed[0] as Verdict;
        out.push({
          kind: 'failed',
          namespace,
          schedule: name,
          ...u.target,
          snapshots: failed.map((v) => v.name),
          message: `${u.subject} (schedule ${key}): ${failed.length} ${noun}(s) failed (${latest.name}: ${latest.error ?? 'error'})${valid ? '; retention deletes them at its next pass' : ''}: check the CSI driver and kubectl describe ${describe} ${latest.name} -n ${namespace}`,
        });
      }
      const stuck = verdicts.filter((v) => v.state === 'stuck');
      if (stuck.length > 0) {
        out.push({
          kind: 'stuck',
          namespace,
          schedule: name,
          ...u.target,
          snapshots: stuck.map((v) => v.name),
          message: `${u.subject} (schedule ${key}): ${stuck.length} ${noun}(s) not ready after pendingDeadline ${plan.pendingDeadline} (${stuck.map((v) => v.name).join(', ')}); kept, as it may still complete, and counted against maxPending ${plan.maxPending}: check the snapshot controller and the CSI driver, or delete it to free its slot`,
        });
      }

      let nextDeletion: PvcReport['nextDeletion'] = null;
      if (valid && !inp.gaugesOnly) {
        const prediction = predictNextDeletion({
          scheduleName: name,
          namespace,
          pvc: u.name,
          retention,
          timeZone,
          snapshots: byUnit.get(u.name) ?? [],
          pvcs: restoring,
          now,
          fires: takesRuns ? timeline : undefined,
          concurrencyPolicy: valid.spec.concurrencyPolicy,
          deletionsNow: verdicts.filter((v): v is Deletion => v.verdict === 'delete'),
        });
        if (prediction) {
          const oldest = prediction.deletions.at(-1) as Deletion;
          nextDeletion = {
            at: isoUtc(prediction.at),
            trigger: prediction.trigger,
            name: oldest.name,
            time: isoUtc(oldest.time),
            reasons: oldest.reasons as readonly DeleteReason[],
            planned: prediction.planned.has(oldest.name),
            count: prediction.deletions.length,
          };
        }
      }

      return {
        verdicts,
        selected: u.selected,
        counts,
        newestReady: newest
          ? {
              name: newest.name,
              time: isoUtc(newest.time),
              ageSeconds: Math.floor((nowMs - newest.time.getTime()) / 1000),
            }
          : null,
        oldestKept: oldestKept ? { name: oldestKept.name, time: isoUtc(oldestKept.time) } : null,
        restoreSizeBytes: bytes,
        stale,
        protected: inp.gaugesOnly ? [] : protectedOf(verdicts),
        nextDeletion,
      };
    };
    // Retention does not run for an invalid schedule: what it would delete stays, as overridden.
    const verdictRows = (verdicts: Verdict[], u: Unit): SnapshotVerdict[] =>
      verdicts.map((v) => ({
        name: v.name,
        time: isoUtc(v.time),
        state: v.state,
        verdict: valid ? v.verdict : 'keep',
        reasons: valid || v.verdict === 'keep' ? v.reasons : [],
        overridden: valid || v.verdict === 'keep' ? v.overridden : (v.reasons as readonly DeleteReason[]),
        restoreSize: u.sizes.get(v.name)?.text ?? null,
        error: v.error ?? null,
      }));

    const report: ScheduleReport = {
      namespace,
      name,
      schedule: typeof spec?.schedule === 'string' ? spec.schedule : '',
      timeZone,
      suspended,
      errors: f.errors,
      lastScheduleTime: status.lastScheduleTime ?? null,
      lastSuccessfulTime: status.lastSuccessfulTime ?? null,
      nextFireTime: next ? isoUtc(next) : null,
      intervalSeconds: intervalMs === undefined ? null : Math.round(intervalMs / 1000),
      retention: spec?.retention ?? null,
      counts: { ...plan.counts },
      restoreSizeBytes: 0,
      pvcs: [],
    };

    if (!f.group) {
      const selectedNames = new Set(f.selected.map(nameOf));
      const names = [...new Set([...selectedNames, ...byUnit.keys()])].sort(byName);
      report.pvcs = names.map((pvc) => {
        const claim = nsPvcs?.byName.get(pvc);
        const sizes = new Map<string, { text: string; bytes: number }>();
        if (!inp.gaugesOnly)
          for (const s of byUnit.get(pvc) ?? []) {
            const size = s.status?.restoreSize;
            if (size) sizes.set(nameOf(s), { text: size, bytes: bytesOf(size) });
          }
        const u: Unit = {
          name: pvc,
          selected: selectedNames.has(pvc),
          bound: claim?.status?.phase === 'Bound',
          watched: claim?.status?.phase === 'Bound',
          since: parseTime(claim?.metadata.creationTimestamp) ?? new Date(0),
          subject: `PVC ${namespace}/${pvc}`,
          noun: 'snapshot',
          note: '',
          target: { pvc },
          sizes,
        };
        const { verdicts, ...facts } = unitReport(u);
        const row: PvcReport = { pvc, phase: claim?.status?.phase ?? null, ...facts };
        if (inp.plan) row.snapshots = verdictRows(verdicts, u);
        return row;
      });
      report.restoreSizeBytes = restoreSizeBytes;
      return report;
    }

    const units = new Map(f.group.groups.map((g) => [g.key, g]));
    const keys = [...new Set([...units.keys(), ...byUnit.keys()])].sort(byName);
    report.group = f.group.policy;
    report.groups = keys.map((group) => {
      const unit = units.get(group);
      const claims = (unit?.members ?? []).map((m) => ({
        pvc: m,
        phase: nsPvcs?.byName.get(m)?.status?.phase ?? null,
      }));
      const unbound = claims.filter((c) => c.phase !== 'Bound').map((c) => c.pvc);
      // The members of each recovery point, and their sizes: a group restores from all of them.
      const membersOf = new Map<string, MemberSnapshot[]>();
      const sizes = new Map<string, { text: string; bytes: number }>();
      let memberCount = 0;
      for (const point of byUnit.get(group) ?? []) {
        const list = (members.get(nameOf(point)) ?? [])
          .map(memberOfRecoveryPoint)
          .sort((a, b) => byName(a.pvc, b.pvc) || byName(a.name, b.name));
        memberCount += list.length;
        membersOf.set(nameOf(point), list);
        const bytes = list.reduce((n, m) => n + bytesOf(m.restoreSize ?? undefined), 0);
        if (list.some((m) => m.restoreSize)) sizes.set(nameOf(point), { text: formatBytes(bytes), bytes });
      }
      const u: Unit = {
        name: group,
        selected: unit !== undefined,
        bound: unit !== undefined && unbound.length === 0,
        watched: claims.some((c) => c.phase === 'Bound'),
        since: parseTime(unit?.unit.metadata.creationTimestamp) ?? new Date(0),
        subject: `group ${group} in ${namespace} (PVCs ${claims.map((c) => c.pvc).join(', ') || 'none'})`,
        noun: 'recovery point',
        note:
          unbound.length > 0
            ? `; it is not taken while its PVC(s) ${unbound.join(', ')} are not Bound (a group is taken whole)`
            : '',
        target: { pvc: null, group },
        sizes,
      };
      const { verdicts, newestReady, ...facts } = unitReport(u);
      const row: GroupReport = {
        group,
        members: claims,
        phase: unit ? (unbound.length > 0 ? 'Pending' : 'Bound') : null,
        selected: facts.selected,
        counts: facts.counts,
        newestReady: newestReady && { ...newestReady, members: membersOf.get(newestReady.name) ?? [] },
        oldestKept: facts.oldestKept,
        restoreSizeBytes: facts.restoreSizeBytes,
        stale: facts.stale,
        protected: facts.protected,
        nextDeletion: facts.nextDeletion,
      };
      if (inp.plan)
        row.snapshots = verdictRows(verdicts, u).map((v) => ({ ...v, members: membersOf.get(v.name) ?? [] }));
      memberCounts.set(row, memberCount);
      return row;
    });
    report.restoreSizeBytes = restoreSizeBytes;
    return report;
  }
}

const isProtectReason = (r: string): r is ProtectReason => (PROTECT_REASONS as readonly string[]).includes(r);

/** The snapshots kept for a protecting reason, with those reasons (most verdicts have none: skipped first). */
function protectedOf(verdicts: Verdict[]): PvcReport['protected'] {
  const out: PvcReport['protected'] = [];
  for (const v of verdicts) {
    if (!v.reasons.some(isProtectReason)) continue;
    out.push({ name: v.name, time: isoUtc(v.time), reasons: v.reasons.filter(isProtectReason) });
  }
  return out;
}

/** A policy that deletes nothing but reads states as `retention` would (its timing, when well-formed). */
function keepAll(retention: RetentionPolicy | undefined): RetentionPolicy {
  try {
    stateTiming(retention ?? {});
    return { failedAfter: retention?.failedAfter, pendingDeadline: retention?.pendingDeadline, minReady: 0 };
  } catch {
    return { minReady: 0 };
  }
}

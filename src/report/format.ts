/** Small formatting shared by the report's renderers. */
import type { RetentionPolicy } from '../api/types.generated.ts';
import { formatDuration } from '../schedule/duration.ts';
import type {
  GroupReport,
  MemberSnapshot,
  NextDeletion,
  PvcReport,
  ScheduleReport,
  SelectedBy,
} from './model.ts';

const UNITS = ['Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'] as const;

/** Bytes as a binary quantity: `0B`, `512Mi`, `1.5Gi`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${Math.round(bytes)}B`;
  let value = bytes;
  let unit = '';
  for (const u of UNITS) {
    if (value < 1024) break;
    value /= 1024;
    unit = u;
  }
  const text = value >= 100 || Number.isInteger(value) ? value.toFixed(0) : value.toFixed(1);
  return `${text.replace(/\.0$/, '')}${unit}`;
}

/** Seconds as `1d2h`. */
export const formatSeconds = (s: number): string => formatDuration(s * 1000);

/** `maxCount 7, expires 30d, keep daily 7 weekly 4, minReady 2`: the policy in one line. */
export function describeRetention(r: RetentionPolicy | null): string {
  if (!r) return 'none';
  const parts: string[] = [];
  if (r.maxCount !== undefined) parts.push(`maxCount ${r.maxCount}`);
  if (r.expires !== undefined) parts.push(`expires ${r.expires}`);
  if (r.keep) {
    const rules = Object.entries(r.keep)
      .filter(([, n]) => n !== undefined)
      .map(([rule, n]) => `${rule} ${String(n)}`);
    parts.push(`keep ${rules.join(' ')}`);
  }
  for (const field of ['minReady', 'failedAfter', 'pendingDeadline', 'maxPending'] as const) {
    if (r[field] !== undefined) parts.push(`${field} ${String(r[field])}`);
  }
  return parts.join(', ');
}

/** `active`, `suspended` or `INVALID`. */
export const scheduleState = (s: ScheduleReport): string =>
  s.errors.length > 0 ? 'INVALID' : s.suspended ? 'suspended' : 'active';

/** `web-0-…-202606151300 at 2026-06-15T13:00:00Z (run: max-count)`, or `-`. */
export function describeNextDeletion(d: NextDeletion | null): string {
  if (!d) return '-';
  const what = d.planned ? `${d.name} (a future run's, taken ${d.time})` : d.name;
  const more = d.count > 1 ? ` and ${d.count - 1} more` : '';
  const when = d.trigger === 'now' ? 'at the next pass' : `at ${d.at}`;
  return `${what}${more} ${when} (${d.trigger === 'now' ? '' : `${d.trigger}: `}${d.reasons.join(',')})`;
}

/** A PVC row's status: `STALE`, `ok`, or why the schedule does not snapshot it. */
export function pvcStatus(p: PvcReport, s: ScheduleReport): string {
  if (p.stale) return 'STALE';
  if (!p.selected) return 'not selected';
  if (s.errors.length > 0) return 'schedule invalid';
  if (s.suspended) return 'suspended';
  return p.phase !== 'Bound' ? 'not Bound' : 'ok';
}

/** `suspended schedule web`, or for a PVC left out of a schedule's groups `schedule db (no label app)`. */
export const describeSelectedBy = (s: SelectedBy): string =>
  s.why === 'not-in-group'
    ? `schedule ${s.schedule} (no label ${s.labelKey})`
    : `${s.why} schedule ${s.schedule}`;

/** `group by Label app.kubernetes.io/instance, class csi-group`: spec.group in one line. */
export function describeGroupPolicy(g: NonNullable<ScheduleReport['group']>): string {
  const by = g.by === 'Label' ? `by Label ${g.labelKey ?? ''}` : 'by Schedule (one group)';
  return `group ${by}, class ${g.volumeGroupSnapshotClassName ?? "the driver's default"}`;
}

/** `pg-0 -> snapshot-1a2b (ready, 10Gi)`: one member of a recovery point. */
export function describeMember(m: MemberSnapshot): string {
  const state = m.readyToUse ? 'ready' : m.error ? `error: ${m.error}` : 'not ready';
  return `${m.pvc || '(no PVC)'} -> ${m.name} (${state}${m.restoreSize ? `, ${m.restoreSize}` : ''})`;
}

/** A group row's status: `STALE`, `ok`, or why the schedule does not take the group. */
export function groupStatus(g: GroupReport, s: ScheduleReport): string {
  if (g.stale) return 'STALE';
  if (!g.selected) return 'no member selected';
  if (s.errors.length > 0) return 'schedule invalid';
  if (s.suspended) return 'suspended';
  if (g.phase === 'Bound') return 'ok';
  const unbound = g.members.filter((m) => m.phase !== 'Bound').map((m) => m.pvc);
  return `not Bound: ${unbound.join(', ')}`;
}

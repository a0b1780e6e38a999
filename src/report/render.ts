/**
 * The report as text: aligned columns for a terminal, Markdown for a ticket, JSON for
 * machines, and (src/report/html.ts) one self-contained page. Unprotected PVCs come first,
 * then a section per schedule, the findings, and the totals.
 */
import type { GroupReport, PvcReport, Report, ScheduleReport } from './model.ts';
import {
  describeGroupPolicy,
  describeMember,
  describeNextDeletion,
  describeRetention,
  describeSelectedBy,
  formatBytes,
  formatSeconds,
  groupStatus,
  pvcStatus,
  scheduleState,
} from './format.ts';
import { alibabaSection } from './alibaba-render.ts';
import { renderHtml } from './html.ts';

export const REPORT_FORMATS = ['table', 'json', 'markdown', 'html'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/** Renders a report. For `html`, build the report with `plan: true`: its timelines draw every snapshot. */
export function renderReport(report: Report, format: ReportFormat): string {
  switch (format) {
    case 'json':
      return JSON.stringify(report, null, 2);
    case 'table':
      return renderText(report, textStyle);
    case 'markdown':
      return renderText(report, markdownStyle);
    case 'html':
      return renderHtml(report);
  }
}

interface Style {
  title: (text: string) => string;
  heading: (text: string) => string;
  line: (text: string) => string;
  table: (header: string[], rows: string[][]) => string;
  code: (text: string) => string;
  strong: (text: string) => string;
  list: (items: string[]) => string;
}

/** Aligned columns; the last one unpadded. */
function columns(header: string[], rows: string[][]): string {
  const widths = header.map((h) => h.length);
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const indent = (text: string): string => text.replace(/^(?=.)/gm, '  ');

const textStyle: Style = {
  title: (t) => t,
  heading: (t) => `\n${t}`,
  line: (t) => indent(t),
  table: (h, rows) => indent(columns(h, rows)),
  code: (t) => t,
  strong: (t) => t.toUpperCase(),
  list: (items) => items.map((i) => `  ${i}`).join('\n'),
};

const mdCell = (t: string): string => t.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\n/g, ' ');
const markdownStyle: Style = {
  title: (t) => `# ${t}`,
  heading: (t) => `\n## ${t}\n`,
  line: (t) => `${t}  `,
  table: (h, rows) =>
    [h, h.map(() => '---'), ...rows].map((r) => `| ${r.map(mdCell).join(' | ')} |`).join('\n') + '\n',
  code: (t) => `\`${t.replace(/`/g, "'")}\``,
  strong: (t) => `**${t}**`,
  list: (items) => items.map((i) => `- ${i}`).join('\n'),
};

function scopeText(report: Report): string {
  const ns = report.scope.namespace === null ? 'all namespaces' : `namespace ${report.scope.namespace}`;
  return report.scope.schedule === null ? ns : `${ns}, schedule ${report.scope.schedule}`;
}

function pvcRow(p: PvcReport, s: ScheduleReport): string[] {
  return [
    p.pvc || '(no PVC)',
    p.phase ?? 'gone',
    String(p.counts.ready),
    String(p.counts.pending),
    String(p.counts.stuck),
    String(p.counts.failed),
    p.newestReady ? `${p.newestReady.name} (${formatSeconds(p.newestReady.ageSeconds)})` : '-',
    p.oldestKept ? p.oldestKept.time : '-',
    p.restoreSizeBytes > 0 ? formatBytes(p.restoreSizeBytes) : '-',
    pvcStatus(p, s),
    describeNextDeletion(p.nextDeletion),
  ];
}

function groupRow(g: GroupReport, s: ScheduleReport): string[] {
  return [
    g.group || '(no group)',
    g.members.map((m) => m.pvc).join(',') || '-',
    String(g.counts.ready),
    String(g.counts.pending),
    String(g.counts.stuck),
    String(g.counts.failed),
    g.newestReady ? `${g.newestReady.name} (${formatSeconds(g.newestReady.ageSeconds)})` : '-',
    g.oldestKept ? g.oldestKept.time : '-',
    g.restoreSizeBytes > 0 ? formatBytes(g.restoreSizeBytes) : '-',
    groupStatus(g, s),
    describeNextDeletion(g.nextDeletion),
  ];
}

/**
 * A schedule with spec.group: a row per group, then what a restore reads (the newest ready
 * recovery point's member snapshots), and with --plan every recovery point with its members.
 */
function groupLines(s: ScheduleReport, groups: GroupReport[], style: Style, plan: boolean): string[] {
  const out: string[] = [];
  out.push(
    style.table(
      [
        'GROUP',
        'MEMBERS',
        'READY',
        'PENDING',
        'STUCK',
        'FAILED',
        'NEWEST READY (AGE)',
        'OLDEST KEPT',
        'SIZE',
        'STATUS',
        'NEXT DELETION',
      ],
      groups.map((g) => groupRow(g, s)),
    ),
  );
  const newest = groups.filter((g) => g.newestReady && g.newestReady.members.length > 0);
  if (newest.length > 0) {
    out.push(style.line('newest ready recovery point per group, member PVC -> VolumeSnapshot:'));
    out.push(
      style.list(
        newest.map(
          (g) =>
            `${g.group}: ${g.newestReady?.name ?? ''}: ${(g.newestReady?.members ?? []).map(describeMember).join(', ')}`,
        ),
      ),
    );
  }
  const protectedLines = groups
    .filter((g) => g.protected.length > 0)
    .map((g) => `${g.group}: ${g.protected.map((x) => `${x.name} (${x.reasons.join(',')})`).join(', ')}`);
  if (protectedLines.length > 0) {
    out.push(style.line('protected:'));
    out.push(style.list(protectedLines));
  }
  if (plan) {
    for (const g of groups) {
      if (!g.snapshots || g.snapshots.length === 0) continue;
      out.push(style.line(`Group ${g.group || '(no group)'}, every recovery point:`));
      out.push(
        style.table(
          ['NAME', 'TIME', 'STATE', 'VERDICT', 'REASONS', 'MEMBERS'],
          g.snapshots.map((v) => [
            v.name,
            v.time,
            v.state,
            v.verdict.toUpperCase(),
            v.reasons.join(',') + (v.overridden.length ? ` (overrides ${v.overridden.join(',')})` : ''),
            v.members.map(describeMember).join(', ') || '-',
          ]),
        ),
      );
    }
  }
  return out;
}

function scheduleSection(s: ScheduleReport, style: Style, plan: boolean): string[] {
  const out: string[] = [];
  out.push(
    style.heading(
      `Schedule ${s.namespace}/${s.name}: ${style.code(s.schedule)} ${s.timeZone}, ${scheduleState(s)}${
        s.intervalSeconds !== null ? `, every ${formatSeconds(s.intervalSeconds)}` : ''
      }`,
    ),
  );
  for (const e of s.errors) out.push(style.line(`${style.strong('invalid')} ${e.path}: ${e.message}`));
  out.push(
    style.line(
      `last run ${s.lastScheduleTime ?? '-'}, last successful ${s.lastSuccessfulTime ?? '-'}, next ${s.nextFireTime ?? '-'}`,
    ),
  );
  if (s.group) out.push(style.line(`${describeGroupPolicy(s.group)}; ${s.groups?.length ?? 0} group(s)`));
  out.push(
    style.line(
      `retention: ${describeRetention(s.retention)}; ${s.groups ? 'recovery points' : 'snapshots'} ${s.counts.ready} ready, ${s.counts.pending} pending, ${s.counts.stuck} stuck, ${s.counts.failed} failed; ${formatBytes(s.restoreSizeBytes)} restorable`,
    ),
  );
  if (s.groups) {
    if (s.groups.length === 0) out.push(style.line('no PVC selected, no recovery points'));
    else out.push(...groupLines(s, s.groups, style, plan));
    return out;
  }
  if (s.pvcs.length === 0) {
    out.push(style.line('no PVC selected, no snapshots'));
    return out;
  }
  out.push(
    style.table(
      [
        'PVC',
        'PHASE',
        'READY',
        'PENDING',
        'STUCK',
        'FAILED',
        'NEWEST READY (AGE)',
        'OLDEST KEPT',
        'SIZE',
        'STATUS',
        'NEXT DELETION',
      ],
      s.pvcs.map((p) => pvcRow(p, s)),
    ),
  );
  const protectedLines = s.pvcs
    .filter((p) => p.protected.length > 0)
    .map((p) => `${p.pvc}: ${p.protected.map((x) => `${x.name} (${x.reasons.join(',')})`).join(', ')}`);
  if (protectedLines.length > 0) {
    out.push(style.line('protected:'));
    out.push(style.list(protectedLines));
  }
  if (plan) {
    for (const p of s.pvcs) {
      if (!p.snapshots || p.snapshots.length === 0) continue;
      out.push(style.line(`PVC ${p.pvc || '(no PVC)'}, every snapshot:`));
      out.push(
        style.table(
          ['NAME', 'TIME', 'STATE', 'VERDICT', 'REASONS'],
          p.snapshots.map((v) => [
            v.name,
            v.time,
            v.state,
            v.verdict.toUpperCase(),
            v.reasons.join(',') + (v.overridden.length ? ` (overrides ${v.overridden.join(',')})` : ''),
          ]),
        ),
      );
    }
  }
  return out;
}

function renderText(report: Report, style: Style): string {
  const out: string[] = [];
  out.push(style.title(`snapcron retention report, ${report.generatedAt}, ${scopeText(report)}`));
  if (report.scope.schedule === null) {
    out.push(style.heading(`Unprotected PVCs: ${report.unprotected.length} (no schedule snapshots them)`));
    if (report.unprotected.length > 0) {
      out.push(
        style.table(
          ['NAMESPACE', 'PVC', 'PHASE', 'SIZE', 'NOTE'],
          report.unprotected.map((u) => [
            u.namespace,
            u.pvc,
            u.phase ?? '-',
            u.storage ?? '-',
            u.selectedBy.length > 0
              ? `selected only by ${u.selectedBy.map(describeSelectedBy).join(', ')}`
              : 'no schedule selects it',
          ]),
        ),
      );
    }
  }
  const plan = report.schedules.some(
    (s) =>
      s.pvcs.some((p) => p.snapshots !== undefined) || !!s.groups?.some((g) => g.snapshots !== undefined),
  );
  if (report.schedules.length === 0) out.push(style.heading('No SnapshotSchedule in scope'));
  for (const s of report.schedules) out.push(...scheduleSection(s, style, plan));
  if (report.alibaba) out.push(...alibabaSection(report.alibaba, style));
  out.push(style.heading(`Findings: ${report.findings.length}`));
  if (report.findings.length > 0) {
    out.push(style.list(report.findings.map((f) => `${style.strong(f.kind)} ${f.message}`)));
  } else {
    out.push(style.line('none'));
  }
  const t = report.totals;
  out.push(style.heading('Totals'));
  out.push(
    style.line(
      `${t.schedules} schedule(s) (${t.suspendedSchedules} suspended, ${t.invalidSchedules} invalid); ${t.pvcs} PVC(s), ${t.unprotectedPvcs} unprotected, ${t.stalePvcs} stale; snapshots ${t.snapshots.ready} ready, ${t.snapshots.pending} pending, ${t.snapshots.stuck} stuck, ${t.snapshots.failed} failed; ${formatBytes(t.restoreSizeBytes)} restorable`,
    ),
  );
  if (t.groups) {
    const g = t.groups;
    out.push(
      style.line(
        `${g.groups} group(s), ${g.staleGroups} stale; recovery points (counted in snapshots above) ${g.recoveryPoints.ready} ready, ${g.recoveryPoints.pending} pending, ${g.recoveryPoints.stuck} stuck, ${g.recoveryPoints.failed} failed, with ${g.memberSnapshots} member VolumeSnapshot(s)`,
      ),
    );
  }
  return out.join('\n');
}

/**
 * The report as one self-contained HTML page: inline CSS, no script, no font, image or any
 * other request. Findings first (highlighted by kind), then the unprotected PVCs, then a
 * section per schedule with a timeline per PVC: every snapshot as a mark on a shared axis
 * (age on a log scale up to "now", then the coming days linear), coloured by state, the
 * snapshot that goes next ringed, and the moment it goes marked.
 */
import type { Finding, GroupReport, PvcReport, Report, ScheduleReport, SnapshotVerdict } from './model.ts';
import {
  describeGroupPolicy,
  describeMember,
  describeNextDeletion,
  describeRetention,
  describeSelectedBy,
  formatBytes,
  formatSeconds,
  groupStatus,
  scheduleState,
} from './format.ts';

/** A timeline's row: a PVC, or a group of a schedule with spec.group (its recovery points). */
type Unit = PvcReport | GroupReport;

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
const e = escapeHtml;

/** Where "now" sits on a timeline, in percent of its width: the past to its left, the future right. */
const NOW_AT = 80;

const STYLE = `
:root{--ok:#2e7d32;--pending:#1565c0;--stuck:#ef6c00;--failed:#c62828;--muted:#5f6368;--line:#dadce0;--bg:#fff;--fg:#202124}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 6px}
.meta{color:var(--muted);margin:2px 0}
code{font:13px ui-monospace,"DejaVu Sans Mono",monospace;background:#f1f3f4;padding:1px 4px;border-radius:3px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px}
.card.bad{border-color:var(--failed);background:#fdecea}
.card.bad b{color:var(--failed)}
ul.findings{list-style:none;padding:0;margin:0}
.finding{border-left:4px solid var(--failed);background:#fdecea;padding:6px 10px;margin:4px 0;border-radius:0 6px 6px 0}
.finding.stuck{border-color:var(--stuck);background:#fff3e0}
.finding.unprotected,.finding.invalid{border-color:#6a1b9a;background:#f3e5f5}
.kind{display:inline-block;min-width:104px;margin-right:8px;font-weight:600;text-transform:uppercase;font-size:12px}
.none{color:var(--ok)}
table{border-collapse:collapse;margin:6px 0}
th,td{text-align:left;padding:3px 10px 3px 0;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600}
section.schedule{border-top:2px solid var(--line);margin-top:24px}
.badge{display:inline-block;font-size:11px;font-weight:700;padding:1px 6px;border-radius:10px;color:#fff;background:var(--muted);margin-left:6px;vertical-align:1px}
.badge.active{background:var(--ok)}.badge.suspended{background:var(--stuck)}.badge.invalid,.badge.stale{background:var(--failed)}
.legend{display:flex;flex-wrap:wrap;gap:14px;color:var(--muted);font-size:12px;margin:8px 0}
.legend span{display:inline-flex;align-items:center;gap:5px}
.pvc{display:grid;grid-template-columns:minmax(180px,22%) 1fr;gap:4px 14px;padding:6px 0;border-bottom:1px solid #f1f3f4}
.pvc.stale .pvc-name{color:var(--failed)}
.pvc-name{font-weight:600;word-break:break-all}
.pvc-facts{color:var(--muted);font-size:12px;grid-column:1}
.timeline{position:relative;height:26px;grid-column:2;grid-row:1 / span 2;background:linear-gradient(to right,#fafafa ${NOW_AT}%,#f1f8e9 ${NOW_AT}%);border:1px solid var(--line);border-radius:4px}
.axis{position:relative;height:16px;margin-left:calc(min(max(180px,22%),100%) + 14px);font-size:11px;color:var(--muted)}
.axis span{position:absolute;transform:translateX(-50%);white-space:nowrap}
.nowline{position:absolute;top:-3px;bottom:-3px;width:2px;background:var(--fg);left:${NOW_AT}%}
.mark{position:absolute;top:7px;width:11px;height:11px;margin-left:-5px;border-radius:50%;background:var(--ok)}
.mark.pending{background:#fff;border:2px solid var(--pending)}
.mark.stuck{background:var(--stuck);border-radius:2px}
.mark.failed{background:var(--failed);border-radius:0;transform:rotate(45deg)}
.mark.delete{outline:2px solid var(--failed);outline-offset:2px;opacity:.55}
.mark.next{outline:3px solid var(--fg);outline-offset:2px}
.mark.planned{background:#fff;border:2px dashed var(--ok)}
.goes{position:absolute;top:0;bottom:0;width:0;border-left:2px dashed var(--failed)}
.next-text{grid-column:1 / span 2;font-size:12px}
details{grid-column:1 / span 2;font-size:12px}
details table{font-size:12px}
.verdict-delete{color:var(--failed);font-weight:600}
`;

interface Axis {
  /** Percent of the width for a time in ms. */
  x: (t: number) => number;
  ticks: { x: number; label: string }[];
}

const TICKS = [
  ['1m', 60],
  ['5m', 300],
  ['15m', 900],
  ['1h', 3600],
  ['6h', 21_600],
  ['1d', 86_400],
  ['1w', 604_800],
  ['30d', 2_592_000],
  ['90d', 7_776_000],
  ['1y', 31_536_000],
  ['2y', 63_072_000],
] as const;

/**
 * The shared axis of a schedule's timelines: ages on a log scale (unit: the schedule's
 * interval, so each run is about as wide as the next), so hourly copies of today and monthly
 * ones of last year both show; the future linear, up to the furthest predicted deletion.
 */
function axisFor(s: ScheduleReport, now: number): Axis {
  const unit = Math.max(1000, (s.intervalSeconds ?? 3600) * 1000);
  let oldest = now - 2 * unit;
  let latest = now + unit;
  for (const p of [...s.pvcs, ...(s.groups ?? [])] as Unit[]) {
    for (const v of p.snapshots ?? []) oldest = Math.min(oldest, Date.parse(v.time));
    if (p.oldestKept) oldest = Math.min(oldest, Date.parse(p.oldestKept.time));
    if (p.nextDeletion)
      latest = Math.max(latest, Date.parse(p.nextDeletion.at), Date.parse(p.nextDeletion.time));
  }
  if (s.nextFireTime) latest = Math.max(latest, Date.parse(s.nextFireTime));
  const span = Math.log1p((now - oldest) / unit);
  const ahead = (latest - now) * 1.05;
  const x = (t: number): number =>
    t <= now
      ? NOW_AT * (1 - Math.log1p((now - t) / unit) / span)
      : NOW_AT + ((100 - NOW_AT) * (t - now)) / ahead;
  const ticks: Axis['ticks'] = [{ x: NOW_AT, label: 'now' }];
  for (const [label, seconds] of TICKS) {
    const t = now - seconds * 1000;
    if (t < oldest) break;
    const at = x(t);
    if (ticks.every((k) => Math.abs(k.x - at) >= 7)) ticks.push({ x: at, label: `${label} ago` });
  }
  for (const [label, seconds] of TICKS) {
    const t = now + seconds * 1000;
    if (t > now + ahead) break;
    const at = x(t);
    if (ticks.every((k) => Math.abs(k.x - at) >= 7)) ticks.push({ x: at, label: `+${label}` });
  }
  return { x, ticks };
}

const pct = (n: number): string => `${Math.min(100, Math.max(0, n)).toFixed(2)}%`;

function marksOf(p: Unit): SnapshotVerdict[] {
  if (p.snapshots) return p.snapshots;
  // Without --plan: what the row itself names.
  const seen = new Map<string, SnapshotVerdict>();
  const add = (name: string, time: string, state: SnapshotVerdict['state']): void => {
    if (!seen.has(name))
      seen.set(name, {
        name,
        time,
        state,
        verdict: 'keep',
        reasons: [],
        overridden: [],
        restoreSize: null,
        error: null,
      });
  };
  if (p.newestReady) add(p.newestReady.name, p.newestReady.time, 'ready');
  if (p.oldestKept) add(p.oldestKept.name, p.oldestKept.time, 'ready');
  for (const x of p.protected)
    add(
      x.name,
      x.time,
      x.reasons.includes('stuck') ? 'stuck' : x.reasons.includes('pending') ? 'pending' : 'ready',
    );
  return [...seen.values()];
}

function timeline(p: Unit, axis: Axis, label = `snapshots of ${'pvc' in p ? p.pvc : p.group}`): string {
  const next = p.nextDeletion;
  const parts: string[] = ['<div class="nowline"></div>'];
  // Snapshots cut within moments of each other would hide one another: fan them out, oldest
  // where its time is and each newer one a step to the right, so the order still reads in time.
  const marks = marksOf(p);
  const taken = new Map<number, number>();
  const place = (t: number): string => {
    const x = axis.x(t);
    const slot = Math.round(x * 2);
    const k = taken.get(slot) ?? 0;
    taken.set(slot, k + 1);
    return `left:${pct(x)}${k > 0 ? `;margin-left:${-5 + 12 * k}px` : ''}`;
  };
  const styles = new Map<SnapshotVerdict, string>();
  for (const v of [...marks].reverse()) styles.set(v, place(Date.parse(v.time)));
  for (const v of marks) {
    const classes = ['mark', v.state === 'ready' ? 'kept' : v.state];
    if (v.verdict === 'delete') classes.push('delete');
    if (next && !next.planned && v.name === next.name) classes.push('next');
    const title = `${v.name} · ${v.time} · ${v.state} · ${v.verdict}${v.reasons.length ? `: ${v.reasons.join(', ')}` : ''}${v.error ? ` · ${v.error}` : ''}`;
    parts.push(
      `<span class="${classes.join(' ')}" data-name="${e(v.name)}" data-state="${v.state}" style="${styles.get(v) ?? ''}" title="${e(title)}"></span>`,
    );
  }
  if (next) {
    if (next.planned) {
      parts.push(
        `<span class="mark planned next" data-name="${e(next.name)}" data-state="planned" style="${place(Date.parse(next.time))}" title="${e(`${next.name} · taken by the run of ${next.time} · goes ${next.at}`)}"></span>`,
      );
    }
    if (next.trigger !== 'now') {
      parts.push(
        `<span class="goes" style="left:${pct(axis.x(Date.parse(next.at)))}" title="${e(`next deletion ${next.at}: ${next.name}`)}"></span>`,
      );
    }
  }
  return `<div class="timeline" role="img" aria-label="${e(label)}">${parts.join('')}</div>`;
}

function pvcBlock(p: PvcReport, axis: Axis): string {
  const facts = [
    p.phase ?? 'gone',
    `${p.counts.ready} ready`,
    p.counts.pending ? `${p.counts.pending} pending` : '',
    p.counts.stuck ? `${p.counts.stuck} stuck` : '',
    p.counts.failed ? `${p.counts.failed} failed` : '',
    p.restoreSizeBytes > 0 ? formatBytes(p.restoreSizeBytes) : '',
    p.newestReady ? `newest ${formatSeconds(p.newestReady.ageSeconds)} old` : 'no ready copy',
    p.selected ? '' : 'not selected',
  ].filter(Boolean);
  const protectedText = p.protected.map((x) => `${x.name} (${x.reasons.join(', ')})`).join('; ');
  const verdicts = p.snapshots?.length
    ? `<details><summary>${p.snapshots.length} snapshot(s): verdicts and reasons</summary><table><thead><tr><th>name</th><th>time</th><th>state</th><th>verdict</th><th>reasons</th></tr></thead><tbody>${p.snapshots
        .map(
          (v) =>
            `<tr><td>${e(v.name)}</td><td>${v.time}</td><td>${v.state}</td><td class="verdict-${v.verdict}">${v.verdict}</td><td>${e(v.reasons.join(', '))}${v.overridden.length ? ` (overrides ${e(v.overridden.join(', '))})` : ''}${v.error ? ` · ${e(v.error)}` : ''}</td></tr>`,
        )
        .join('')}</tbody></table></details>`
    : '';
  return `<div class="pvc${p.stale ? ' stale' : ''}" data-pvc="${e(p.pvc)}"><div class="pvc-name">${e(p.pvc || '(no PVC)')}${p.stale ? '<span class="badge stale">stale</span>' : ''}</div>${timeline(p, axis)}<div class="pvc-facts">${e(facts.join(' · '))}</div><div class="next-text">next deletion: <span class="next-deletion">${e(describeNextDeletion(p.nextDeletion))}</span>${protectedText ? ` · protected: ${e(protectedText)}` : ''}</div>${verdicts}</div>`;
}

/** A group's row: its timeline of recovery points, its members, and with --plan each point's member snapshots. */
function groupBlock(g: GroupReport, s: ScheduleReport, axis: Axis): string {
  const facts = [
    g.phase ?? 'no member left',
    `PVCs ${g.members.map((m) => `${m.pvc} (${m.phase ?? 'gone'})`).join(', ') || 'none'}`,
    `${g.counts.ready} ready`,
    g.counts.pending ? `${g.counts.pending} pending` : '',
    g.counts.stuck ? `${g.counts.stuck} stuck` : '',
    g.counts.failed ? `${g.counts.failed} failed` : '',
    g.restoreSizeBytes > 0 ? formatBytes(g.restoreSizeBytes) : '',
    g.newestReady ? `newest ${formatSeconds(g.newestReady.ageSeconds)} old` : 'no ready recovery point',
    groupStatus(g, s) === 'ok' ? '' : groupStatus(g, s),
  ].filter(Boolean);
  const protectedText = g.protected.map((x) => `${x.name} (${x.reasons.join(', ')})`).join('; ');
  const restore = g.newestReady
    ? `<div class="next-text">restore reads <code>${e(g.newestReady.name)}</code>: <span class="members">${e(g.newestReady.members.map(describeMember).join(', ') || 'no member snapshot yet')}</span></div>`
    : '';
  const verdicts = g.snapshots?.length
    ? `<details><summary>${g.snapshots.length} recovery point(s): verdicts, reasons and member snapshots</summary><table><thead><tr><th>name</th><th>time</th><th>state</th><th>verdict</th><th>reasons</th><th>members</th></tr></thead><tbody>${g.snapshots
        .map(
          (v) =>
            `<tr data-name="${e(v.name)}"><td>${e(v.name)}</td><td>${v.time}</td><td>${v.state}</td><td class="verdict-${v.verdict}">${v.verdict}</td><td>${e(v.reasons.join(', '))}${v.overridden.length ? ` (overrides ${e(v.overridden.join(', '))})` : ''}${v.error ? ` · ${e(v.error)}` : ''}</td><td>${e(v.members.map(describeMember).join(', ') || '-')}</td></tr>`,
        )
        .join('')}</tbody></table></details>`
    : '';
  return `<div class="pvc group${g.stale ? ' stale' : ''}" data-group="${e(g.group)}"><div class="pvc-name">group ${e(g.group || '(no group)')}${g.stale ? '<span class="badge stale">stale</span>' : ''}</div>${timeline(g, axis, `recovery points of group ${g.group}`)}<div class="pvc-facts">${e(facts.join(' · '))}</div>${restore}<div class="next-text">next deletion: <span class="next-deletion">${e(describeNextDeletion(g.nextDeletion))}</span>${protectedText ? ` · protected: ${e(protectedText)}` : ''}</div>${verdicts}</div>`;
}

function scheduleBlock(s: ScheduleReport, now: number): string {
  const state = scheduleState(s);
  const axis = axisFor(s, now);
  const head = `<h2>${e(`${s.namespace}/${s.name}`)}<span class="badge ${state.toLowerCase()}">${e(state.toLowerCase())}</span></h2>
<p class="meta"><code>${e(s.schedule)}</code> ${e(s.timeZone)}${s.intervalSeconds !== null ? ` · every ${formatSeconds(s.intervalSeconds)}` : ''} · last run ${s.lastScheduleTime ?? '-'} · last successful ${s.lastSuccessfulTime ?? '-'} · next ${s.nextFireTime ?? '-'}</p>
${
  s.group
    ? `<p class="meta">${e(describeGroupPolicy(s.group))} · ${s.groups?.length ?? 0} group(s): retention counts recovery points (VolumeGroupSnapshots), each kept or deleted whole</p>
`
    : ''
}<p class="meta">retention: ${e(describeRetention(s.retention))} · ${s.counts.ready} ready, ${s.counts.pending} pending, ${s.counts.stuck} stuck, ${s.counts.failed} failed · ${formatBytes(s.restoreSizeBytes)} restorable</p>
${s.errors.map((x) => `<p class="finding invalid"><span class="kind">invalid</span>${e(`${x.path}: ${x.message}`)}</p>`).join('')}`;
  if (s.pvcs.length === 0 && (s.groups ?? []).length === 0)
    return `<section class="schedule" data-schedule="${e(s.name)}" data-namespace="${e(s.namespace)}">${head}<p class="meta">no PVC selected, no ${s.groups ? 'recovery points' : 'snapshots'}</p></section>`;
  const legend = `<div class="legend"><span><i class="mark" style="position:static;margin:0"></i>kept</span><span><i class="mark pending" style="position:static;margin:0"></i>pending</span><span><i class="mark stuck" style="position:static;margin:0"></i>stuck</span><span><i class="mark failed" style="position:static;margin:0"></i>failed</span><span><i class="mark delete" style="position:static;margin:0 4px"></i>deleted at the next pass</span><span><i class="mark next" style="position:static;margin:0 4px"></i>next to go</span><span><i class="mark planned" style="position:static;margin:0"></i>a future run's</span><span><i class="goes" style="position:static;height:12px"></i>when it goes</span></div>`;
  const ticks = `<div class="axis">${axis.ticks.map((t) => `<span style="left:${pct(t.x)}">${e(t.label)}</span>`).join('')}</div>`;
  const rows = s.groups
    ? s.groups.map((g) => groupBlock(g, s, axis)).join('')
    : s.pvcs.map((p) => pvcBlock(p, axis)).join('');
  return `<section class="schedule" data-schedule="${e(s.name)}" data-namespace="${e(s.namespace)}">${head}${legend}${ticks}${rows}</section>`;
}

const finding = (f: Finding): string =>
  `<li class="finding ${f.kind}" data-kind="${f.kind}"><span class="kind">${f.kind}</span>${e(f.message)}</li>`;

export function renderHtml(report: Report): string {
  const now = Date.parse(report.generatedAt);
  const t = report.totals;
  const scope = `${report.scope.namespace === null ? 'all namespaces' : `namespace ${report.scope.namespace}`}${report.scope.schedule === null ? '' : `, schedule ${report.scope.schedule}`}`;
  const card = (label: string, value: string, bad = false, id = ''): string =>
    `<div class="card${bad ? ' bad' : ''}"${id ? ` data-total="${id}"` : ''}><b>${e(value)}</b>${e(label)}</div>`;
  const cards = [
    card('schedules', String(t.schedules), t.invalidSchedules > 0, 'schedules'),
    card('PVCs', String(t.pvcs), false, 'pvcs'),
    card('unprotected PVCs', String(t.unprotectedPvcs), t.unprotectedPvcs > 0, 'unprotected'),
    card('stale PVCs', String(t.stalePvcs), t.stalePvcs > 0, 'stale'),
    t.groups ? card('groups', String(t.groups.groups), false, 'groups') : '',
    t.groups
      ? card('stale groups', String(t.groups.staleGroups), t.groups.staleGroups > 0, 'stale-groups')
      : '',
    card('failed snapshots', String(t.snapshots.failed), t.snapshots.failed > 0, 'failed'),
    card('stuck snapshots', String(t.snapshots.stuck), t.snapshots.stuck > 0, 'stuck'),
    card('ready snapshots', String(t.snapshots.ready), false, 'ready'),
    card('restorable', formatBytes(t.restoreSizeBytes), false, 'bytes'),
  ].join('');
  const findings =
    report.findings.length > 0
      ? `<ul class="findings">${report.findings.map(finding).join('')}</ul>`
      : '<p class="none">Nothing to act on.</p>';
  const unprotected =
    report.scope.schedule !== null
      ? ''
      : `<section id="unprotected"><h2>Unprotected PVCs (${report.unprotected.length})</h2>${
          report.unprotected.length === 0
            ? '<p class="none">Every PVC in scope is snapshotted by a schedule.</p>'
            : `<table><thead><tr><th>namespace</th><th>PVC</th><th>phase</th><th>size</th><th>note</th></tr></thead><tbody>${report.unprotected
                .map(
                  (u) =>
                    `<tr data-pvc="${e(u.pvc)}"><td>${e(u.namespace)}</td><td>${e(u.pvc)}</td><td>${e(u.phase ?? '-')}</td><td>${e(u.storage ?? '-')}</td><td>${e(u.selectedBy.length > 0 ? `selected only by ${u.selectedBy.map(describeSelectedBy).join(', ')}` : 'no schedule selects it')}</td></tr>`,
                )
                .join('')}</tbody></table>`
        }</section>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>snapcron retention report · ${e(report.generatedAt)}</title><style>${STYLE}</style></head>
<body>
<header><h1>snapcron retention report</h1><p class="meta">${e(report.generatedAt)} · ${e(scope)}</p><div class="cards">${cards}</div></header>
<section id="findings"><h2>Findings (${report.findings.length})</h2>${findings}</section>
${unprotected}
${report.schedules.map((s) => scheduleBlock(s, now)).join('\n')}
</body></html>
`;
}

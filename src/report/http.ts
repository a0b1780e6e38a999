/**
 * `/report` for the controller's metrics port: the same report as `snapcron report`, from
 * whatever objects the caller hands over (the informer cache), with no API call of its own.
 * Query: `format` json (default), html, markdown or table; `namespace`; `schedule`;
 * `plan=true`; `now` (RFC 3339, for comparing with a `snapcron report --now` run).
 */
import { buildReport, type ReportInput } from './build.ts';
import type { Report } from './model.ts';
import { REPORT_FORMATS, renderReport, type ReportFormat } from './render.ts';

export interface ReportResponse {
  status: number;
  contentType: string;
  body: string;
}

const CONTENT_TYPES: Record<ReportFormat, string> = {
  json: 'application/json; charset=utf-8',
  html: 'text/html; charset=utf-8',
  markdown: 'text/markdown; charset=utf-8',
  table: 'text/plain; charset=utf-8',
};

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Answers one `/report` request. `url` is the request's (path and query); `objects` returns
 * the cached schedules, PVCs and snapshots, called once per request.
 */
export function reportResponse(
  url: string,
  objects: () => Pick<ReportInput, 'schedules' | 'pvcs' | 'snapshots' | 'groupSnapshots'>,
  clock: () => Date = () => new Date(),
  /** Adds what the caches do not hold, e.g. the ECS view of `--cloud alibaba` (CloudAudit.apply). */
  augment?: (report: Report, scope: Pick<ReportInput, 'now' | 'namespace' | 'schedule'>) => Report,
): ReportResponse {
  const query = new URL(url, 'http://localhost').searchParams;
  const bad = (message: string): ReportResponse => ({
    status: 400,
    contentType: 'text/plain; charset=utf-8',
    body: `${message}\n`,
  });
  const format = (query.get('format') ?? 'json') as ReportFormat;
  if (!REPORT_FORMATS.includes(format)) return bad(`format "${format}": use ${REPORT_FORMATS.join(', ')}`);
  const nowText = query.get('now');
  const now = nowText === null ? clock() : new Date(nowText);
  if (nowText !== null && (!RFC3339.test(nowText) || Number.isNaN(now.getTime())))
    return bad(`now "${nowText}" is not an RFC 3339 time, e.g. 2026-03-29T01:30:00Z`);
  const planText = query.get('plan');
  const scope = {
    now,
    namespace: query.get('namespace') || undefined,
    schedule: query.get('schedule') || undefined,
  };
  const built = buildReport({
    ...objects(),
    ...scope,
    // The page's timelines draw every snapshot.
    plan: format === 'html' || planText === 'true' || planText === '1',
  });
  const report = augment ? augment(built, scope) : built;
  return { status: 200, contentType: CONTENT_TYPES[format], body: `${renderReport(report, format)}\n` };
}

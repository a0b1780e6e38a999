/**
 * Deterministic names and labels for the snapshots a schedule takes. The name is a
 * function of (PVC, schedule, scheduled time) only, and distinct triples get distinct
 * names, so firing twice for the same time can only meet AlreadyExists, never make a
 * duplicate nor take another PVC's name. Nothing reads these names back: snapshots are
 * found by their labels and scheduled-at annotation.
 */
import { createHash } from 'node:crypto';
import { ANNOTATION_SCHEDULED_AT, LABEL_PVC, LABEL_SCHEDULE } from '../api/constants.ts';

const MAX_NAME = 253;
const MAX_LABEL_VALUE = 63;
const HASH_LENGTH = 10;
const HASH_SPACE = 16 ** HASH_LENGTH;

const shortHash = (text: string): string =>
  createHash('sha256').update(text).digest('hex').slice(0, HASH_LENGTH);

/** `yyyymmddhhmm`, plus `ss` when the time has seconds, in UTC. */
export function timeStamp(at: Date): string {
  const iso = at.toISOString(); // 2026-03-29T01:00:05.000Z
  const minutes = iso.slice(0, 16).replace(/[-T:]/g, '');
  const seconds = iso.slice(17, 19);
  return seconds === '00' ? minutes : minutes + seconds;
}

/** Trims a DNS-1123 prefix so it ends in an alphanumeric character. */
const trimEnd = (text: string): string => text.replace(/[-.]+$/, '');

/**
 * Ten hex digits that tell (PVC, schedule) pairs apart: a hash of `<pvc>-<schedule>` plus
 * the PVC name's length. Pairs that join to the same text (`data-web` + `nightly`, `data` +
 * `web-nightly`) differ in that length only, so their digits always differ; pairs that join
 * to different texts differ in the name's readable part, or, where that part is cut, in the hash.
 */
function pairHash(pvc: string, schedule: string): string {
  const hash = Number.parseInt(shortHash(`${pvc}-${schedule}`), 16);
  return ((hash + pvc.length) % HASH_SPACE).toString(16).padStart(HASH_LENGTH, '0');
}

/**
 * `<pvc>-<schedule>-<hash>-<stamp>`, `<hash>` from {@link pairHash}. The name parses back from
 * its end (the stamp has no `-`, the hash is 10 characters), so distinct triples give distinct
 * names. Past 253 characters the `<pvc>-<schedule>` part is cut; hash and stamp always stay.
 */
export function snapshotName(pvc: string, schedule: string, scheduledAt: Date): string {
  const tail = `-${pairHash(pvc, schedule)}-${timeStamp(scheduledAt)}`;
  const head = `${pvc}-${schedule}`;
  if (head.length + tail.length <= MAX_NAME) return head + tail;
  return trimEnd(head.slice(0, MAX_NAME - tail.length)) + tail;
}

/**
 * A label value: the text itself if it fits in 63 characters, else a 52-character prefix and a
 * hash. Distinct names give distinct values: names that fit are kept as they are, longer ones
 * differ in the 40-bit hash of the whole text; a name that fits could only meet a longer one's
 * value by spelling out its `<prefix>-<hash>` on purpose. Do not change the form: snapshots
 * already taken are found by these values.
 */
export function labelValue(text: string): string {
  if (text.length <= MAX_LABEL_VALUE) return text;
  const hash = shortHash(text);
  return `${trimEnd(text.slice(0, MAX_LABEL_VALUE - hash.length - 1))}-${hash}`;
}

/** Labels and annotations that tie a snapshot to its schedule, PVC and scheduled time. */
export function snapshotMetadata(
  pvc: string,
  schedule: string,
  scheduledAt: Date,
): { labels: Record<string, string>; annotations: Record<string, string> } {
  return {
    labels: { [LABEL_SCHEDULE]: labelValue(schedule), [LABEL_PVC]: labelValue(pvc) },
    annotations: { [ANNOTATION_SCHEDULED_AT]: scheduledAt.toISOString().replace('.000Z', 'Z') },
  };
}

/**
 * Snapshots taken on demand, not at a fire time. The schedule's annotation `snapcron.io/run-now`
 * asks for one (any new value; `snapcron run` writes it) and `snapcron.io/run-now-hold`, equal to
 * that value, asks to hold its snapshots. On the snapshot, `snapcron.io/trigger` says which kind
 * of run took it and `snapcron.io/run-now` which request it answered; such snapshots have no
 * scheduled-at, so the timed runs' de-duplication and interrupted-run logic never see them.
 */
export const ANNOTATION_RUN_NOW = 'snapcron.io/run-now';
export const ANNOTATION_RUN_NOW_HOLD = 'snapcron.io/run-now-hold';
export const LABEL_TRIGGER = 'snapcron.io/trigger';
export const TRIGGER_RUN_NOW = 'run-now';
export const TRIGGER_RUN_ON_CREATE = 'run-on-create';

/** One run on demand: answering a run-now value (see {@link runNowKey}), or spec.runOnCreate. */
export type OnDemandRun = { kind: 'run-now'; key: string } | { kind: 'run-on-create' };

/** Longest run-now value kept as it is, in status and on snapshots; longer ones by their hash. */
const MAX_RUN_NOW_VALUE = 256;
/** Values this short, of digits and lowercase letters, appear in the snapshot name as they are. */
const VERBATIM_VALUE = /^[a-z0-9]{1,32}$/;

/**
 * What a run-now annotation value is recorded as: the value without surrounding space, or, past
 * 256 characters, `sha256:<hex>` of it (status.lastRunNow has a length limit). Empty: no request.
 */
export function runNowKey(value: string | undefined): string | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  return v.length <= MAX_RUN_NOW_VALUE ? v : `sha256:${createHash('sha256').update(v).digest('hex')}`;
}

/**
 * The last part of an on-demand name: `first` for runOnCreate, `r<value>` for a short value of
 * [a-z0-9] (`kubectl annotate … run-now=$(date +%s)`, or what `snapcron run` writes), else `h`
 * and ten hex digits of the value's hash. It always holds a letter, where a timed name's last
 * part is all digits (its stamp), and has no `-`.
 */
export function onDemandToken(run: OnDemandRun): string {
  if (run.kind === 'run-on-create') return 'first';
  return VERBATIM_VALUE.test(run.key) ? `r${run.key}` : `h${shortHash(run.key)}`;
}

/**
 * `<pvc>-<schedule>-<hash>-<token>` ({@link onDemandToken}): a function of (PVC, schedule, run)
 * only, so the controller, `snapcron run` and `snapcron tick` answering the same request create
 * the same object and meet AlreadyExists, never a duplicate. It can never equal a timed name (the
 * last part holds a letter); distinct pairs differ as timed names do; distinct requests of one
 * pair differ in the token (two long or odd values only if their 40-bit hashes collide).
 */
export function onDemandSnapshotName(pvc: string, schedule: string, run: OnDemandRun): string {
  const tail = `-${pairHash(pvc, schedule)}-${onDemandToken(run)}`;
  const head = `${pvc}-${schedule}`;
  if (head.length + tail.length <= MAX_NAME) return head + tail;
  return trimEnd(head.slice(0, MAX_NAME - tail.length)) + tail;
}

/** Labels and annotations of an on-demand snapshot: the schedule's and PVC's, and which run. */
export function onDemandMetadata(
  pvc: string,
  schedule: string,
  run: OnDemandRun,
): { labels: Record<string, string>; annotations: Record<string, string> } {
  return {
    labels: {
      [LABEL_SCHEDULE]: labelValue(schedule),
      [LABEL_PVC]: labelValue(pvc),
      [LABEL_TRIGGER]: run.kind === 'run-now' ? TRIGGER_RUN_NOW : TRIGGER_RUN_ON_CREATE,
    },
    annotations: run.kind === 'run-now' ? { [ANNOTATION_RUN_NOW]: run.key } : {},
  };
}

/** The on-demand run a snapshot answered, as `run-now:<key>` or `run-on-create`; undefined for a timed one. */
export function onDemandOf(s: {
  metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
}): string | undefined {
  const trigger = s.metadata.labels?.[LABEL_TRIGGER];
  if (trigger === TRIGGER_RUN_ON_CREATE) return TRIGGER_RUN_ON_CREATE;
  if (trigger === TRIGGER_RUN_NOW)
    return `${TRIGGER_RUN_NOW}:${s.metadata.annotations?.[ANNOTATION_RUN_NOW] ?? ''}`;
  return undefined;
}

/** The same text as {@link onDemandOf} for a run about to be taken. */
export const onDemandId = (run: OnDemandRun): string =>
  run.kind === 'run-now' ? `${TRIGGER_RUN_NOW}:${run.key}` : TRIGGER_RUN_ON_CREATE;

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const isDns1123Subdomain = (name: string): boolean =>
  name.length <= MAX_NAME && DNS1123_SUBDOMAIN.test(name);

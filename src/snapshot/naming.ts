/**
 * Deterministic names and labels for the snapshots a schedule takes. The name is a
 * function of (PVC, schedule, scheduled time) only, so firing twice for the same
 * time can only meet AlreadyExists, never make a duplicate.
 */
import { createHash } from 'node:crypto';
import { ANNOTATION_SCHEDULED_AT, LABEL_PVC, LABEL_SCHEDULE } from '../api/constants.ts';

const MAX_NAME = 253;
const MAX_LABEL_VALUE = 63;
const HASH_LENGTH = 10;

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

/** `<pvc>-<schedule>-<stamp>`; when that exceeds 253 characters the front is cut and a hash keeps it unique. */
export function snapshotName(pvc: string, schedule: string, scheduledAt: Date): string {
  const stamp = timeStamp(scheduledAt);
  const full = `${pvc}-${schedule}-${stamp}`;
  if (full.length <= MAX_NAME) return full;
  const hash = shortHash(`${pvc}/${schedule}`);
  const room = MAX_NAME - stamp.length - hash.length - 2;
  return `${trimEnd(`${pvc}-${schedule}`.slice(0, room))}-${hash}-${stamp}`;
}

/** A label value: the text itself if it fits in 63 characters, else a prefix and a hash. */
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

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const isDns1123Subdomain = (name: string): boolean =>
  name.length <= MAX_NAME && DNS1123_SUBDOMAIN.test(name);

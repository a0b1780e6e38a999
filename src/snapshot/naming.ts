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

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const isDns1123Subdomain = (name: string): boolean =>
  name.length <= MAX_NAME && DNS1123_SUBDOMAIN.test(name);

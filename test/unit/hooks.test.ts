import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { PersistentVolumeClaim } from '../../src/api/objects.ts';
import type { Hook, SnapshotSchedule, SnapshotScheduleStatus } from '../../src/api/types.generated.ts';
import { validateSchedule } from '../../src/api/validate.ts';
import { decide, type ScheduleObservation } from '../../src/controller/decide.ts';
import { describeFailure } from '../../src/controller/hooks.ts';
import { schedule } from '../support/builders.ts';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
const pvc = (name: string): PersistentVolumeClaim => ({
  metadata: { name, namespace: 'default', creationTimestamp: '2026-01-01T00:00:00Z' },
  status: { phase: 'Bound' },
});
const PRE: Hook = { podSelector: { matchLabels: { app: 'db' } }, command: ['fsfreeze', '--freeze', '/data'] };
const POST: Hook = {
  podSelector: { matchLabels: { app: 'db' } },
  command: ['fsfreeze', '--unfreeze', '/data'],
};
const withHooks = (
  hooks: SnapshotSchedule['spec']['hooks'],
  status: SnapshotScheduleStatus = {},
  spec: Partial<SnapshotSchedule['spec']> = {},
  annotations: Record<string, string> = {},
): SnapshotSchedule => {
  const s = schedule('db', { schedule: '0 2 * * *', hooks, ...spec });
  return {
    ...s,
    metadata: { ...s.metadata, creationTimestamp: '2026-01-01T00:00:00Z', generation: 1, annotations },
    status,
  };
};
const DUE = new Date('2026-06-10T02:00:05Z');
const IDLE = new Date('2026-06-10T12:00:00Z');
const ran = { lastScheduleTime: '2026-06-10T02:00:00Z' };
const observe = (
  s: SnapshotSchedule,
  now: Date,
  o: Partial<ScheduleObservation> = {},
): ScheduleObservation => ({
  schedule: s,
  pvcs: [pvc('data-0'), pvc('data-1')],
  snapshots: [],
  now,
  ...o,
});

describe('hooks in the plan (decide stays pure: the executor runs them)', () => {
  it('a due run with hooks plans pre, the creates, then post, for that run; onFailure defaults to Fail', () => {
    const plan = decide(
      observe(withHooks({ pre: PRE, post: POST }, { lastScheduleTime: '2026-06-09T02:00:00Z' }), DUE),
    );
    expect(plan.creates.map((c) => c.pvc).sort()).toEqual(['data-0', 'data-1']);
    expect(plan.hooks).toEqual({
      scheduledTime: new Date('2026-06-10T02:00:00Z'),
      // As stored: with the CRD's default timeout.
      pre: { ...PRE, timeoutSeconds: 30 },
      post: { ...POST, timeoutSeconds: 30 },
      preOnFailure: 'Fail',
    });
    expect(plan.pendingPost).toBeUndefined();
  });

  it('carries onFailure Continue, and plans a post-only or pre-only hook alone', () => {
    const last = { lastScheduleTime: '2026-06-09T02:00:00Z' };
    expect(
      decide(observe(withHooks({ pre: { ...PRE, onFailure: 'Continue' } }, last), DUE)).hooks,
    ).toMatchObject({
      preOnFailure: 'Continue',
      post: undefined,
    });
    expect(decide(observe(withHooks({ post: POST }, last), DUE)).hooks).toMatchObject({
      pre: undefined,
      post: POST,
    });
  });

  it('a pass that creates nothing runs no hooks', () => {
    const plan = decide(observe(withHooks({ pre: PRE, post: POST }, ran), IDLE));
    expect(plan.creates).toEqual([]);
    expect(plan.hooks).toBeUndefined();
    // Suspended: nothing is taken, so no hook either.
    const suspended = decide(observe(withHooks({ pre: PRE }, {}, { suspend: true }), DUE));
    expect(suspended.hooks).toBeUndefined();
  });

  it('a run on demand gets the hooks, at its own time', () => {
    const plan = decide(
      observe(withHooks({ pre: PRE, post: POST }, ran, {}, { 'snapcron.io/run-now': 'x1' }), IDLE),
    );
    expect(plan.onDemand?.trigger).toBe('RunNow');
    expect(plan.hooks?.scheduledTime).toEqual(IDLE);
  });

  it('a post hook owed in status (status.hooks.pendingPost) is planned first, on any pass, with the current post hook', () => {
    const owed = { scheduledTime: '2026-06-10T02:00:00Z', pods: ['db-0', 'db-1'] };
    const plan = decide(
      observe(withHooks({ pre: PRE, post: POST }, { ...ran, hooks: { pendingPost: owed } }), IDLE),
    );
    expect(plan.creates).toEqual([]);
    expect(plan.pendingPost).toEqual({ ...owed, hook: { ...POST, timeoutSeconds: 30 } });
    // Post removed from the spec since: the record is only cleared.
    const removed = decide(observe(withHooks({ pre: PRE }, { ...ran, hooks: { pendingPost: owed } }), IDLE));
    expect(removed.pendingPost).toEqual({ ...owed, hook: undefined });
    // This process already ran and cleared it (its write not yet in the cache): not again.
    const done = decide(
      observe(withHooks({ pre: PRE, post: POST }, { ...ran, hooks: { pendingPost: owed } }), IDLE, {
        postDoneInMemory: owed.scheduledTime,
      }),
    );
    expect(done.pendingPost).toBeUndefined();
    // ...and its status does not write the stale record back.
    expect(done.status.hooks?.pendingPost).toBeUndefined();
    // The run interrupted mid-hook was not recorded: it is taken again, hooks and all.
    const again = decide(
      observe(
        withHooks(
          { pre: PRE, post: POST },
          { lastScheduleTime: '2026-06-09T02:00:00Z', hooks: { pendingPost: owed } },
        ),
        DUE,
      ),
    );
    expect(again.pendingPost?.pods).toEqual(['db-0', 'db-1']);
    expect(again.hooks?.scheduledTime).toEqual(new Date('2026-06-10T02:00:00Z'));
  });

  it('a first run (runOnCreate) whose pre hook failed was taken: it is not retried on every pass', () => {
    const failedFirst: SnapshotScheduleStatus = {
      lastRun: {
        scheduledTime: '2026-06-10T11:00:00Z',
        trigger: 'RunOnCreate',
        created: 0,
        failed: 0,
        skipped: 2,
        skips: [{ pvc: 'data-0', reason: 'PreHookFailed', message: 'pre hook failed' }],
      },
    };
    const plan = decide(
      observe(withHooks({ pre: PRE }, failedFirst, { runOnCreate: true, startingDeadlineSeconds: 60 }), IDLE),
    );
    expect(plan.onDemand).toBeUndefined();
    expect(plan.creates).toEqual([]);
    // Whereas a first run that found nothing Bound is still pending.
    const empty = {
      lastRun: { ...failedFirst.lastRun, skips: [{ pvc: 'data-0', reason: 'NotBound', message: '' }] },
    };
    expect(
      decide(
        observe(withHooks({ pre: PRE }, empty, { runOnCreate: true, startingDeadlineSeconds: 60 }), IDLE),
      ).onDemand?.trigger,
    ).toBe('RunOnCreate');
  });
});

describe('spec.hooks validation (the CRD schema and rules)', () => {
  const doc = (hooks: unknown): unknown => ({
    apiVersion: 'snapcron.io/v1',
    kind: 'SnapshotSchedule',
    metadata: { name: 'db', namespace: 'default' },
    spec: { schedule: '@daily', retention: { maxCount: 7 }, hooks },
  });
  it('defaults timeoutSeconds to 30 and accepts Continue and Fail', () => {
    const { errors, schedule: s } = validateSchedule(
      doc({ pre: { ...PRE, onFailure: 'Continue' }, post: POST }),
    );
    expect(errors).toEqual([]);
    expect(s?.spec.hooks?.pre?.timeoutSeconds).toBe(30);
    expect(s?.spec.hooks?.post?.timeoutSeconds).toBe(30);
  });
  it.each([
    [{ pre: { ...PRE, command: [] } }, 'spec.hooks.pre.command'],
    [{ pre: { ...PRE, command: ['', 'x'] } }, 'spec.hooks.pre.command'],
    [{ post: { ...POST, timeoutSeconds: 601 } }, 'spec.hooks.post.timeoutSeconds'],
    [{ pre: { ...PRE, timeoutSeconds: 0 } }, 'spec.hooks.pre.timeoutSeconds'],
    [{ pre: { ...PRE, onFailure: 'Ignore' } }, 'spec.hooks.pre.onFailure'],
    [{ pre: { command: ['true'] } }, 'spec.hooks.pre.podSelector'],
    [
      { pre: { ...PRE, podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } } },
      'spec.hooks.pre.podSelector.matchExpressions[0].values',
    ],
  ])('rejects %j at %s', (hooks, path) => {
    const { errors } = validateSchedule(doc(hooks));
    expect(errors.map((e) => e.path)).toContain(path);
  });
});

describe('hook failure messages', () => {
  it('name the pod, the container, the exit code or timeout, and keep the output’s last 1 KiB', () => {
    const base = { pod: 'db-0', container: 'db', ok: false, output: '', ms: 5 };
    expect(describeFailure({ ...base, exitCode: 3, output: 'cannot lock\n' }, 30)).toBe(
      'pod db-0 container db: exit code 3; output: cannot lock',
    );
    expect(describeFailure({ ...base, timedOut: true }, 30)).toBe(
      'pod db-0 container db: timed out after 30s',
    );
    const long = describeFailure({ ...base, exitCode: 1, output: `${'x'.repeat(5000)}END` }, 30);
    expect(long.endsWith('END')).toBe(true);
    expect(long.length).toBeLessThan(1100);
  });
});

describe('the RBAC hooks need (README "Hooks")', () => {
  it('is the ClusterRole’s last two rules, pods get/list and pods/exec get/create, and the README’s patch drops exactly them', () => {
    const docs = parseAllDocuments(readFileSync('deploy/base/rbac.yaml', 'utf8')).map(
      (d) => d.toJS() as { kind?: string; metadata?: { name?: string }; rules?: Rule[] },
    );
    const role = docs.find((d) => d.kind === 'ClusterRole' && d.metadata?.name === 'snapcron');
    const rules = role?.rules ?? [];
    expect(rules.length).toBe(8);
    expect(rules.slice(6)).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] },
      { apiGroups: [''], resources: ['pods/exec'], verbs: ['get', 'create'] },
    ]);
    // The patch the README gives: remove /rules/7, then /rules/6.
    const patched = rules.filter((_, i) => i !== 7).filter((_, i) => i !== 6);
    expect(patched.flatMap((r) => r.resources).filter((r) => r.startsWith('pods'))).toEqual([]);
    expect(patched).toEqual(rules.slice(0, 6));
  });
});

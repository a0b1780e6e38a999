/**
 * README "Hooks": what the executor promises around pre and post, on the real API server (status
 * writes, snapshots, events, RBAC), with the one part that needs a node, exec in a pod, replaced
 * by a recorder. test/integration/hooks.test.ts execs in real pods (npm run test:node).
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim } from '../../src/api/objects.ts';
import type { Hook, SnapshotSchedule } from '../../src/api/types.generated.ts';
import { decide } from '../../src/controller/decide.ts';
import { CUT_WAIT_MS, Executor } from '../../src/controller/executor.ts';
import type { HookOutcome } from '../../src/controller/hooks.ts';
import { Kube } from '../../src/kube/client.ts';
import { EventRecorder } from '../../src/kube/events.ts';
import {
  ALL_VERBS,
  boundPvc,
  createSchedule,
  eventually,
  eventsOf,
  getSchedule,
  kube,
  kubeconfigPath,
  listSnapshots,
  restrictedKubeconfig,
  setSnapshotStatus,
  useNamespace,
} from '../env/kube.ts';

/** Records every exec; a pre hook fails when `failPre` says so. */
class RecordingHooks {
  readonly selected: string[] = [];
  readonly runs: { which: string; pods: string[] }[] = [];
  private readonly pods: string[];
  private readonly failPre: boolean;
  constructor(pods: string[], failPre = false) {
    this.pods = pods;
    this.failPre = failPre;
  }
  selectPods(_namespace: string, selector: Hook['podSelector']): Promise<string[]> {
    this.selected.push(JSON.stringify(selector));
    return Promise.resolve(this.pods);
  }
  /** At the post hook: was every snapshot of the namespace cut (status.creationTime)? */
  cutAtPost: boolean | undefined;
  async run(namespace: string, pods: string[], hook: Hook): Promise<HookOutcome[]> {
    const which = hook.command[0] ?? '';
    this.runs.push({ which, pods });
    if (which === 'post')
      this.cutAtPost = (await listSnapshots(namespace)).every((x) => !!x.status?.creationTime);
    const fail = which === 'pre' && this.failPre;
    return pods.map((pod) => ({
      pod,
      container: 'db',
      ok: !fail,
      exitCode: fail ? 1 : 0,
      output: '',
      ms: 1,
    }));
  }
}

describe('the executor around hooks (real API server; exec recorded)', () => {
  const ns = useNamespace('hookexec');
  const log = pino({ level: 'silent' });
  let marking: NodeJS.Timeout | undefined;
  afterEach(() => clearInterval(marking));

  /** Cuts every snapshot as it appears, as a CSI snapshotter would (post waits for the cut). */
  const cutAsCreated = (namespace: string): void => {
    const done = new Set<string>();
    marking = setInterval(() => {
      void listSnapshots(namespace).then((all) =>
        Promise.all(
          all
            .filter((s) => !done.has(s.metadata.name ?? ''))
            .map(async (s) => {
              done.add(s.metadata.name ?? '');
              await setSnapshotStatus(namespace, s.metadata.name ?? '', {
                readyToUse: true,
                creationTime: new Date().toISOString(),
              });
            }),
        ),
      );
    }, 100);
  };

  /** snapcron's executor with the exec recorded. */
  const executorWith = (client: Kube, hooks: RecordingHooks, cutWaitMs?: number): Executor =>
    new Executor({ kube: client, events: new EventRecorder(client, log), log, hooks, cutWaitMs });

  /** A schedule with hooks, due now: its pass as the controller would make it. */
  const duePass = async (hooks: SnapshotSchedule['spec']['hooks'], kubeconfig = kubeconfigPath()) => {
    await boundPvc(ns(), 'db-0', { app: 'db' });
    await createSchedule(ns(), 'db', {
      schedule: '* * * * *',
      claimSelector: { matchLabels: { app: 'db' } },
      hooks,
    });
    const schedule = await getSchedule(ns(), 'db');
    const pvcs = (await kube().core.listNamespacedPersistentVolumeClaim({ namespace: ns() }))
      .items as PersistentVolumeClaim[];
    const now = new Date(Date.now() + 61_000); // past the next minute's fire
    const plan = decide({ schedule, pvcs, snapshots: [], now });
    expect(plan.creates).toHaveLength(1);
    const client = Kube.fromFile(kubeconfig);
    return { schedule, plan, client };
  };

  it('post runs in exactly the pods pre ran in (not its own selector), after the snapshot is cut', async () => {
    cutAsCreated(ns());
    const { schedule, plan, client } = await duePass({
      pre: { podSelector: { matchLabels: { app: 'db' } }, command: ['pre'] },
      post: { podSelector: { matchLabels: { app: 'elsewhere' } }, command: ['post'] },
    });
    const hooks = new RecordingHooks(['db-0', 'db-1']);
    const executor = executorWith(client, hooks);
    const result = await executor.execute(schedule, plan);
    expect(result.created).toHaveLength(1);
    expect(hooks.selected).toEqual([JSON.stringify({ matchLabels: { app: 'db' } })]);
    expect(hooks.runs).toEqual([
      { which: 'pre', pods: ['db-0', 'db-1'] },
      { which: 'post', pods: ['db-0', 'db-1'] },
    ]);
    expect(hooks.cutAtPost).toBe(true);
    // The owed post was recorded before pre and cleared by the pass's status write.
    expect((await getSchedule(ns(), 'db')).status?.hooks?.pendingPost).toBeUndefined();
  });

  it("a snapshot not cut in time: a Warning HookSnapshotNotCut, and post runs anyway in pre's pods", async () => {
    // No snapshotter marks anything cut; the wait is 1.5 s here, 120 s in the controller.
    expect(CUT_WAIT_MS).toBe(120_000);
    const { schedule, plan, client } = await duePass({
      pre: { podSelector: { matchLabels: { app: 'db' } }, command: ['pre'] },
      post: { podSelector: { matchLabels: { app: 'db' } }, command: ['post'] },
    });
    const hooks = new RecordingHooks(['db-0']);
    const t0 = Date.now();
    const result = await executorWith(client, hooks, 1_500).execute(schedule, plan);
    expect(result.created).toHaveLength(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_500);
    expect(hooks.runs).toEqual([
      { which: 'pre', pods: ['db-0'] },
      { which: 'post', pods: ['db-0'] },
    ]);
    expect(hooks.cutAtPost).toBe(false);
    const event = await eventually(async () => (await eventsOf(ns(), 'HookSnapshotNotCut'))[0], 10_000);
    expect(event.type).toBe('Warning');
    expect(event.involvedObject).toMatchObject({ kind: 'SnapshotSchedule', name: 'db' });
    expect(event.message).toMatch(
      /^VolumeSnapshot\(s\) \S+ not cut \(no status\.creationTime\) within 1\.5s of their creation; the post hook runs anyway, so they may not be consistent$/,
    );
  });

  it('onFailure Continue: a failed pre hook still takes the snapshots, says so in an event, and post runs', async () => {
    cutAsCreated(ns());
    const { schedule, plan, client } = await duePass({
      pre: { podSelector: {}, command: ['pre'], onFailure: 'Continue' },
      post: { podSelector: {}, command: ['post'] },
    });
    const hooks = new RecordingHooks(['db-0'], true);
    const executor = executorWith(client, hooks);
    const result = await executor.execute(schedule, plan);
    expect(result.created).toHaveLength(1);
    expect((await listSnapshots(ns())).length).toBe(1);
    expect(hooks.runs.map((r) => r.which)).toEqual(['pre', 'post']);
    const events = (await kube().core.listNamespacedEvent({ namespace: ns() })).items;
    expect(events.find((e) => e.reason === 'PreHookFailed')?.message).toMatch(
      /snapshots taken anyway \(onFailure Continue\)/,
    );
    expect(
      (await getSchedule(ns(), 'db')).status?.conditions?.find((c) => c.type === 'HookFailed'),
    ).toMatchObject({
      status: 'True',
      reason: 'HookFailed',
      message: expect.stringMatching(/pre hook failed in 1 of 1 pod/) as unknown,
    });
  });

  it('when status.hooks.pendingPost cannot be written, pre is not run (nothing would owe its post)', async () => {
    // May read schedules but not write their status; everything else a pass needs.
    const noStatus = await restrictedKubeconfig(ns(), 'no-status', [
      { apiGroups: ['snapcron.io'], resources: ['snapshotschedules'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['snapshot.storage.k8s.io'], resources: ['volumesnapshots'], verbs: ALL_VERBS },
      { apiGroups: [''], resources: ['events', 'persistentvolumeclaims', 'pods'], verbs: ALL_VERBS },
    ]);
    const { schedule, plan, client } = await duePass(
      { pre: { podSelector: {}, command: ['pre'] }, post: { podSelector: {}, command: ['post'] } },
      noStatus,
    );
    const hooks = new RecordingHooks(['db-0']);
    const executor = executorWith(client, hooks);
    const err = await executor.execute(schedule, plan).catch((e: unknown) => e);
    expect(String(err)).toMatch(
      /could not record status\.hooks\.pendingPost before the pre hook, so the pre hook was not run: .*forbidden/i,
    );
    expect(hooks.runs).toEqual([]);
    expect(await listSnapshots(ns())).toEqual([]);
  });
});

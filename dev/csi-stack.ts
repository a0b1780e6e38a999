/**
 * The CSI snapshot stack on top of a control plane: our host-path driver plus the
 * real snapshot-controller, csi-snapshotter and csi-provisioner (built from Go modules
 * by hack/build-csi.sh), a StorageClass, and a VolumeSnapshotClass and a
 * VolumeGroupSnapshotClass with deletionPolicy Delete. Volume group snapshots are on: the
 * snapshot-controller and csi-snapshotter run with the CSIVolumeGroupSnapshot gate, on the
 * groupsnapshot.storage.k8s.io CRDs the control plane installs (a clear error without them).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { DRIVER_NAME, driverPaths } from './csi-driver.ts';
import { hackScriptOutput } from './hack-script.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const STORAGE_CLASS = 'csi-hostpath-sc';
export const SNAPSHOT_CLASS = 'csi-hostpath-snapclass';
export const GROUP_SNAPSHOT_CLASS = 'csi-hostpath-groupsnapclass';
/** external-snapshotter's gate for volume group snapshots (beta, off by default in v8). */
const GROUP_SNAPSHOT_GATE = '--feature-gates=CSIVolumeGroupSnapshot=true';

/** For objects another run may have created: 409 Conflict means they exist. */
const ignoreConflict = (err: unknown): void => {
  if ((err as { code?: number }).code !== 409) throw err;
};

const lastLine = hackScriptOutput;

export class CsiStack {
  readonly dir: string;
  readonly stateDir: string;
  private readonly procs: ChildProcess[] = [];
  private stopped = false;
  /** Stacks of this process started (or starting) and not yet stopped; see ControlPlane.running. */
  static readonly running = new Set<CsiStack>();
  private constructor(dir: string) {
    this.dir = dir;
    this.stateDir = join(dir, 'driver-state');
  }

  /** Where the driver keeps volume `id`'s files: the "disk" a test writes data into. */
  volumeDir(volumeHandle: string): string {
    return join(driverPaths(this.stateDir).volumes, volumeHandle);
  }
  snapshotArchive(snapshotHandle: string): string {
    return join(driverPaths(this.stateDir).snapshots, `${snapshotHandle}.tar`);
  }

  /**
   * With `node`, the driver also serves the CSI node side for that node's kubelet and registers
   * with it through `registrationDir` (dev/node.ts's PLUGINS_REGISTRY), and a CSIDriver object
   * tells the kubelet to mount without waiting for an attach.
   */
  static async start(
    kubeconfig: string,
    dir: string,
    opts: { node?: { nodeId: string; registrationDir: string } } = {},
  ): Promise<CsiStack> {
    const stack = new CsiStack(dir);
    CsiStack.running.add(stack);
    try {
      await stack.boot(kubeconfig, opts);
      return stack;
    } catch (err) {
      await stack.stop();
      throw err;
    }
  }

  private async boot(
    kubeconfig: string,
    opts: { node?: { nodeId: string; registrationDir: string } },
  ): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const bin = lastLine('hack/build-csi.sh');
    const proto = lastLine('hack/csi-proto.sh');
    const socket = join(this.dir, 'csi.sock');
    const nodeArgs = opts.node
      ? [
          `--node-id=${opts.node.nodeId}`,
          `--registration-dir=${opts.node.registrationDir}`,
          `--registration-proto=${lastLine('hack/plugin-registration-proto.sh')}`,
        ]
      : [];
    this.spawn('csi-driver', process.execPath, [
      join(ROOT, 'dev/csi-driver.ts'),
      `--endpoint=unix://${socket}`,
      `--state-dir=${this.stateDir}`,
      `--proto=${proto}`,
      ...nodeArgs,
    ]);
    for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
    if (!existsSync(socket))
      throw new Error(`CSI driver did not open ${socket}; see ${this.dir}/csi-driver.log`);
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfig);
    // The group snapshot CRDs come with the control plane (dev/control-plane.ts installCrds): with
    // the group gate on, the snapshot-controller exits at start-up without them, and the class
    // below would fail with a bare 404. Say so first.
    const groupCrd = 'volumegroupsnapshots.groupsnapshot.storage.k8s.io';
    await kc
      .makeApiClient(k8s.ApiextensionsV1Api)
      .readCustomResourceDefinition({ name: groupCrd })
      .catch((err: unknown) => {
        throw new Error(
          `the CSI stack needs the CRD ${groupCrd} (volume group snapshots are on): start the ` +
            'ControlPlane with installCrds (the default), or call its installCrds() first',
          { cause: err },
        );
      });
    const common = [`--kubeconfig=${kubeconfig}`, '--leader-election=false'];
    this.spawn('snapshot-controller', join(bin, 'snapshot-controller'), [
      ...common,
      GROUP_SNAPSHOT_GATE,
      '--v=2',
    ]);
    this.spawn('csi-snapshotter', join(bin, 'csi-snapshotter'), [
      ...common,
      `--csi-address=${socket}`,
      GROUP_SNAPSHOT_GATE,
      '--v=2',
    ]);
    this.spawn('csi-provisioner', join(bin, 'csi-provisioner'), [
      ...common,
      `--csi-address=${socket}`,
      '--v=2',
    ]);

    const storage = kc.makeApiClient(k8s.StorageV1Api);
    if (opts.node)
      await storage
        .createCSIDriver({
          body: {
            metadata: { name: DRIVER_NAME },
            spec: { attachRequired: false, podInfoOnMount: false, volumeLifecycleModes: ['Persistent'] },
          },
        })
        .catch(ignoreConflict);
    await storage
      .createStorageClass({
        body: {
          metadata: { name: STORAGE_CLASS },
          provisioner: DRIVER_NAME,
          reclaimPolicy: 'Delete',
          volumeBindingMode: 'Immediate',
        },
      })
      .catch(ignoreConflict);
    await kc
      .makeApiClient(k8s.CustomObjectsApi)
      .createClusterCustomObject({
        group: 'snapshot.storage.k8s.io',
        version: 'v1',
        plural: 'volumesnapshotclasses',
        body: {
          apiVersion: 'snapshot.storage.k8s.io/v1',
          kind: 'VolumeSnapshotClass',
          metadata: { name: SNAPSHOT_CLASS },
          driver: DRIVER_NAME,
          deletionPolicy: 'Delete',
        },
      })
      .catch(ignoreConflict);
    await kc
      .makeApiClient(k8s.CustomObjectsApi)
      .createClusterCustomObject({
        group: 'groupsnapshot.storage.k8s.io',
        version: 'v1',
        plural: 'volumegroupsnapshotclasses',
        body: {
          apiVersion: 'groupsnapshot.storage.k8s.io/v1',
          kind: 'VolumeGroupSnapshotClass',
          metadata: { name: GROUP_SNAPSHOT_CLASS },
          driver: DRIVER_NAME,
          deletionPolicy: 'Delete',
        },
      })
      .catch(ignoreConflict);
  }

  private spawn(name: string, bin: string, args: string[]): void {
    if (this.stopped) throw new Error(`CSI stack in ${this.dir} stopped while starting ${name}`);
    const fd = openSync(join(this.dir, `${name}.log`), 'a');
    this.procs.push(spawn(bin, args, { stdio: ['ignore', fd, fd], detached: true }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    CsiStack.running.delete(this);
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once('exit', () => resolve());
            try {
              process.kill(-(p.pid ?? 0), 'SIGTERM');
            } catch {
              resolve();
            }
            setTimeout(() => {
              try {
                process.kill(-(p.pid ?? 0), 'SIGKILL');
              } catch {
                /* gone */
              }
            }, 3000).unref();
          }),
      ),
    );
  }
}

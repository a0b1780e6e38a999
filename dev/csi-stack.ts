/**
 * The CSI snapshot stack on top of a control plane: our host-path driver plus the
 * real snapshot-controller, csi-snapshotter and csi-provisioner (built from Go modules
 * by hack/build-csi.sh), a StorageClass and a VolumeSnapshotClass with
 * deletionPolicy Delete.
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

const lastLine = hackScriptOutput;

export class CsiStack {
  readonly dir: string;
  readonly stateDir: string;
  private readonly procs: ChildProcess[] = [];
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
    mkdirSync(dir, { recursive: true });
    const bin = lastLine('hack/build-csi.sh');
    const proto = lastLine('hack/csi-proto.sh');
    const socket = join(dir, 'csi.sock');
    const nodeArgs = opts.node
      ? [
          `--node-id=${opts.node.nodeId}`,
          `--registration-dir=${opts.node.registrationDir}`,
          `--registration-proto=${lastLine('hack/plugin-registration-proto.sh')}`,
        ]
      : [];
    stack.spawn('csi-driver', process.execPath, [
      join(ROOT, 'dev/csi-driver.ts'),
      `--endpoint=unix://${socket}`,
      `--state-dir=${stack.stateDir}`,
      `--proto=${proto}`,
      ...nodeArgs,
    ]);
    for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
    if (!existsSync(socket)) throw new Error(`CSI driver did not open ${socket}; see ${dir}/csi-driver.log`);
    const common = [`--kubeconfig=${kubeconfig}`, '--leader-election=false'];
    stack.spawn('snapshot-controller', join(bin, 'snapshot-controller'), [...common, '--v=2']);
    stack.spawn('csi-snapshotter', join(bin, 'csi-snapshotter'), [
      ...common,
      `--csi-address=${socket}`,
      '--v=2',
    ]);
    stack.spawn('csi-provisioner', join(bin, 'csi-provisioner'), [
      ...common,
      `--csi-address=${socket}`,
      '--v=2',
    ]);

    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfig);
    const storage = kc.makeApiClient(k8s.StorageV1Api);
    if (opts.node)
      await storage
        .createCSIDriver({
          body: {
            metadata: { name: DRIVER_NAME },
            spec: { attachRequired: false, podInfoOnMount: false, volumeLifecycleModes: ['Persistent'] },
          },
        })
        .catch((err: { code?: number }) => {
          if (err.code !== 409) throw err;
        });
    await storage
      .createStorageClass({
        body: {
          metadata: { name: STORAGE_CLASS },
          provisioner: DRIVER_NAME,
          reclaimPolicy: 'Delete',
          volumeBindingMode: 'Immediate',
        },
      })
      .catch((err: { code?: number }) => {
        if (err.code !== 409) throw err;
      });
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
      .catch((err: { code?: number }) => {
        if (err.code !== 409) throw err;
      });
    return stack;
  }

  private spawn(name: string, bin: string, args: string[]): void {
    const fd = openSync(join(this.dir, `${name}.log`), 'a');
    this.procs.push(spawn(bin, args, { stdio: ['ignore', fd, fd], detached: true }));
  }

  async stop(): Promise<void> {
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

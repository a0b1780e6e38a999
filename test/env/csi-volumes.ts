/**
 * Volumes on the local CSI stack for integration tests: PVCs provisioned (or restored) by the
 * real csi-provisioner, the driver directory that holds a bound PVC's data, and an app that
 * writes one counter into two files for consistency checks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import type { CsiStack } from '../../dev/csi-stack.ts';
import { STORAGE_CLASS } from '../../dev/csi-stack.ts';
import { eventually, kube } from './kube.ts';

/** Creates a 1Gi PVC of the stack's StorageClass, empty or restored from VolumeSnapshot `snapshot`. */
export async function createCsiPvc(
  namespace: string,
  name: string,
  o: { labels?: Record<string, string>; snapshot?: string } = {},
): Promise<void> {
  await kube().core.createNamespacedPersistentVolumeClaim({
    namespace,
    body: {
      metadata: { name, ...(o.labels ? { labels: o.labels } : {}) },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: STORAGE_CLASS,
        resources: { requests: { storage: '1Gi' } },
        ...(o.snapshot
          ? { dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: o.snapshot } }
          : {}),
      },
    },
  });
}

/** The CSI volume handle of PVC `name` once it is Bound. */
export async function boundVolumeHandle(
  namespace: string,
  name: string,
  timeoutMs = 60_000,
): Promise<string> {
  const k = kube();
  const pvc = await eventually(async () => {
    const p = await k.core.readNamespacedPersistentVolumeClaim({ name, namespace });
    return p.status?.phase === 'Bound' ? p : undefined;
  }, timeoutMs);
  const pv = await k.core.readPersistentVolume({ name: pvc.spec?.volumeName ?? '' });
  return pv.spec?.csi?.volumeHandle ?? '';
}

/** The driver directory holding PVC `name`'s data, once it is Bound: where a test reads and writes it. */
export async function boundVolumeDir(stack: CsiStack, namespace: string, name: string): Promise<string> {
  return stack.volumeDir(await boundVolumeHandle(namespace, name));
}

/**
 * An app in its own process: counter n into file `a`, then n into file `b`, about every
 * millisecond, each by an atomic rename through `scratch` (a reader never sees a half-written
 * file). At any instant b is a or a-1: a copy of both that is further apart, or has b = a+1,
 * was not cut at one instant.
 */
export function startCounterWriter(a: string, b: string, scratch: string): ChildProcess {
  mkdirSync(scratch, { recursive: true });
  const script = `
    const { writeFileSync, renameSync } = require('node:fs');
    const [a, b, scratch] = process.argv.slice(1);
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let n = 1; ; n++) {
      writeFileSync(scratch + '/a', String(n));
      renameSync(scratch + '/a', a);
      writeFileSync(scratch + '/b', String(n));
      renameSync(scratch + '/b', b);
      Atomics.wait(pause, 0, 0, 1);
    }`;
  return spawn(process.execPath, ['-e', script, a, b, scratch], { stdio: 'ignore' });
}

export async function stopCounterWriter(w: ChildProcess | undefined): Promise<void> {
  if (!w || w.exitCode !== null || w.signalCode !== null) return;
  const exited = new Promise((r) => w.once('exit', r));
  w.kill('SIGKILL');
  await exited;
}

/**
 * Memory of the controller's caches: VolumeSnapshots and PVCs as the API server sends them
 * (managedFields from several managers, finalizers, foreign annotations), cached whole or
 * slim (src/kube/slim.ts), in IndexedStores with snapcron's indexes. Each measurement runs in
 * a fresh Node process that first loads what the controller loads (client-node, pino,
 * prom-client), then parses LIST pages of 500 from JSON text as a reflector does, and reports
 * the heap the caches retain after a full GC and the process RSS. The cache modules are
 * transpiled to JavaScript first, so Node's TypeScript stripping (about 25 MB) is not counted.
 *
 * By default a fifth of the target scale (20,000 snapshots, 2,000 PVCs), with a per-object
 * budget. `SNAPCRON_MEMORY_FULL=1` runs the issue's scale, 100,000 snapshots and 10,000 PVCs
 * (1,000 namespaces x 10 PVCs x 10 snapshots), whole and slim, with V8's default sizes and
 * with the flags a 256 MiB container wants, and prints the table.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const FULL = process.env.SNAPCRON_MEMORY_FULL === '1';
const SNAPSHOTS = FULL ? 100_000 : 20_000;
const PVCS = SNAPSHOTS / 10;
const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
/** The cache modules and what they import, transpiled to JavaScript under a temporary dir. */
const MODULES = [
  'kube/slim.ts',
  'kube/index-cache.ts',
  'kube/selector.ts',
  'snapshot/naming.ts',
  'api/constants.ts',
];
let out = '';
const js = (p: string): string => JSON.stringify(join(out, p.replace(/\.ts$/, '.js')));

/** The child: builds wire JSON pages, parses them, caches whole or slim, reports memory. */
const child = (): string => `
await import('@kubernetes/client-node');
await import('pino');
await import('prom-client');
const { slimPvc, slimSnapshot } = await import(${js('kube/slim.ts')});
const { IndexedStore, pvcIndexers, snapshotIndexers } = await import(${js('kube/index-cache.ts')});
const [mode, nSnap, nPvc] = [process.env.MODE, Number(process.env.SNAPSHOTS), Number(process.env.PVCS)];
const MB = 2 ** 20;
const mem = () => { for (let i = 0; i < 3; i++) globalThis.gc(); const m = process.memoryUsage(); return m; };
const t = (i) => new Date(Date.UTC(2026, 5, 1) + i * 3_600_000).toISOString().replace('.000Z', 'Z');
const hex = (n, w) => n.toString(16).padStart(w, '0');
const uid = (n) => hex(n, 8) + '-1b2c-4d5e-8f90-' + hex(n * 7919, 12);
const mf = (manager, fields, sub) => ({ manager, operation: 'Update', apiVersion: 'v1', time: t(1), fieldsType: 'FieldsV1', fieldsV1: fields, ...(sub ? { subresource: sub } : {}) });
const NS = 1000, PER_NS = nPvc / NS, PER_PVC = nSnap / nPvc;
function pvcWire(i) {
  const ns = 'app-' + String(Math.floor(i / PER_NS)).padStart(3, '0');
  const name = 'data-web-' + (i % PER_NS);
  return { metadata: { name, namespace: ns, uid: uid(i), resourceVersion: String(100000 + i), creationTimestamp: t(0),
    labels: { app: 'web', 'app.kubernetes.io/instance': 'web', 'app.kubernetes.io/name': 'nginx', tier: 'gold' },
    annotations: { 'pv.kubernetes.io/bind-completed': 'yes', 'pv.kubernetes.io/bound-by-controller': 'yes',
      'volume.beta.kubernetes.io/storage-provisioner': 'diskplugin.csi.alibabacloud.com', 'volume.kubernetes.io/storage-provisioner': 'diskplugin.csi.alibabacloud.com' },
    finalizers: ['kubernetes.io/pvc-protection'],
    managedFields: [
      mf('kube-controller-manager', { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {}, 'f:app.kubernetes.io/instance': {}, 'f:app.kubernetes.io/name': {}, 'f:tier': {} } }, 'f:spec': { 'f:accessModes': {}, 'f:resources': { 'f:requests': { '.': {}, 'f:storage': {} } }, 'f:storageClassName': {}, 'f:volumeMode': {} } }),
      mf('kube-controller-manager', { 'f:metadata': { 'f:annotations': { '.': {}, 'f:pv.kubernetes.io/bind-completed': {}, 'f:pv.kubernetes.io/bound-by-controller': {}, 'f:volume.beta.kubernetes.io/storage-provisioner': {}, 'f:volume.kubernetes.io/storage-provisioner': {} } }, 'f:spec': { 'f:volumeName': {} } }),
      mf('kube-controller-manager', { 'f:status': { 'f:accessModes': {}, 'f:capacity': { '.': {}, 'f:storage': {} }, 'f:phase': {} } }, 'status'),
    ] },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '20Gi' } }, storageClassName: 'alicloud-disk-ssd', volumeMode: 'Filesystem', volumeName: 'd-' + hex(i, 20) },
    status: { accessModes: ['ReadWriteOnce'], capacity: { storage: '20Gi' }, phase: 'Bound' } };
}
function snapWire(i) {
  const p = Math.floor(i / PER_PVC), fire = i % PER_PVC;
  const ns = 'app-' + String(Math.floor(p / PER_NS)).padStart(3, '0');
  const pvc = 'data-web-' + (p % PER_NS);
  const at = t(24 * fire);
  const name = pvc + '-nightly-' + hex(p * 2654435761 % 2 ** 40, 10) + '-' + at.replace(/[-T:]/g, '').slice(0, 12);
  const content = 'snapcontent-' + uid(i + 10_000_000);
  return { metadata: { name, namespace: ns, uid: uid(i + 1_000_000), resourceVersion: String(200000 + i), generation: 1, creationTimestamp: at,
    labels: { 'snapcron.io/schedule': 'nightly', 'snapcron.io/pvc': pvc, team: 'storage' },
    annotations: { 'snapcron.io/scheduled-at': at },
    finalizers: ['snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection', 'snapshot.storage.kubernetes.io/volumesnapshot-bound-protection'],
    managedFields: [
      mf('snapcron', { 'f:metadata': { 'f:annotations': { '.': {}, 'f:snapcron.io/scheduled-at': {} }, 'f:labels': { '.': {}, 'f:snapcron.io/pvc': {}, 'f:snapcron.io/schedule': {}, 'f:team': {} } }, 'f:spec': { '.': {}, 'f:source': { '.': {}, 'f:persistentVolumeClaimName': {} }, 'f:volumeSnapshotClassName': {} } }),
      mf('snapshot-controller', { 'f:metadata': { 'f:finalizers': { '.': {}, 'v:"snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"': {}, 'v:"snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"': {} } } }),
      mf('snapshot-controller', { 'f:status': { '.': {}, 'f:boundVolumeSnapshotContentName': {}, 'f:creationTime': {}, 'f:readyToUse': {}, 'f:restoreSize': {} } }, 'status'),
    ] },
    spec: { source: { persistentVolumeClaimName: pvc }, volumeSnapshotClassName: 'alibabacloud-disk-snapshot' },
    status: { boundVolumeSnapshotContentName: content, creationTime: at, readyToUse: true, restoreSize: '20Gi' } };
}
const base = mem();
const started = process.hrtime.bigint();
let wireBytes = 0;
const keep = mode === 'slim';
const snaps = new IndexedStore({ indexers: snapshotIndexers() });
const pvcs = new IndexedStore({ indexers: pvcIndexers() });
for (const [n, wire, slim, store] of [[nPvc, pvcWire, slimPvc, pvcs], [nSnap, snapWire, slimSnapshot, snaps]]) {
  for (let first = 0; first < n; first += 500) {
    const body = JSON.stringify({ items: Array.from({ length: Math.min(500, n - first) }, (_, j) => wire(first + j)) });
    wireBytes += body.length;
    for (const item of JSON.parse(body).items) store.upsert(keep ? slim(item) : item);
  }
}
const ms = Number(process.hrtime.bigint() - started) / 1e6;
await new Promise((r) => setTimeout(r, 2000));
const after = mem();
console.log(JSON.stringify({ mode, snapshots: snaps.size, pvcs: pvcs.size, wireMB: wireBytes / MB,
  heapMB: (after.heapUsed - base.heapUsed) / MB, rssMB: after.rss / MB, baseRssMB: base.rss / MB, buildMs: ms }));
`;

interface Measure {
  mode: string;
  flags: string;
  snapshots: number;
  pvcs: number;
  wireMB: number;
  heapMB: number;
  rssMB: number;
  baseRssMB: number;
  buildMs: number;
}

/**
 * What a 256 MiB container wants: a bounded old space and a small young generation (with V8's
 * defaults on a large machine, pooled young-generation pages alone hold 100+ MB of RSS).
 */
const CONTAINER_FLAGS = (
  process.env.SNAPCRON_MEMORY_FLAGS ?? '--max-old-space-size=192 --max-semi-space-size=4'
).split(' ');

function measure(mode: 'slim' | 'full', flags: string[] = []): Promise<Measure> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', ...flags, '--input-type=module', '-e', child()],
      {
        // The child resolves client-node, pino and prom-client from the repository.
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        env: { ...process.env, MODE: mode, SNAPSHOTS: String(SNAPSHOTS), PVCS: String(PVCS) },
        maxBuffer: 1 << 20,
      },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else
          resolve({
            ...(JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Measure),
            flags: flags.join(' ') || '(V8 defaults)',
          });
      },
    );
  });
}

const round = (x: number): number => Math.round(x * 10) / 10;
const perObject = (m: Measure): number => Math.round((m.heapMB * 2 ** 20) / (m.snapshots + m.pvcs));

describe('cache memory, whole vs slim objects', () => {
  beforeAll(() => {
    out = mkdtempSync(join(tmpdir(), 'snapcron-mem-'));
    // ESM resolution finds packages from the importing file: point node_modules at the repo's.
    writeFileSync(join(out, 'package.json'), '{"type":"module"}');
    for (const m of MODULES) {
      const { outputText } = ts.transpileModule(readFileSync(join(SRC, m), 'utf8'), {
        compilerOptions: {
          module: ts.ModuleKind.ESNext,
          target: ts.ScriptTarget.ES2022,
          rewriteRelativeImportExtensions: true,
          verbatimModuleSyntax: true,
        },
      });
      const file = join(out, m.replace(/\.ts$/, '.js'));
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, outputText);
    }
  });
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it(
    `${SNAPSHOTS.toLocaleString('en')} VolumeSnapshots + ${PVCS.toLocaleString('en')} PVCs: slim fits the budget`,
    async () => {
      const rows = [await measure('slim')];
      if (FULL) {
        rows.push(
          await measure('slim', CONTAINER_FLAGS),
          await measure('full', ['--max-old-space-size=4096']),
        );
      }
      console.log(
        rows
          .map(
            (m) =>
              `${m.mode} [${m.flags}]: ${m.snapshots} snapshots + ${m.pvcs} PVCs: caches retain ${round(m.heapMB)} MB ` +
              `of heap (${perObject(m)} B/object); process RSS ${round(m.rssMB)} MB (${round(m.baseRssMB)} MB ` +
              `before the caches); LIST JSON parsed ${round(m.wireMB)} MB in ${Math.round(m.buildMs)} ms`,
          )
          .join('\n'),
      );
      const [slim] = rows as [Measure];
      expect(slim.snapshots).toBe(SNAPSHOTS);
      expect(slim.pvcs).toBe(PVCS);
      // Budget per cached object, store, indexes and interned strings included: under 800 B at
      // the scale (110,000 objects in under 85 MB of heap); the small run pays the
      // fixed costs (index maps, interners) over fewer objects.
      expect(perObject(slim)).toBeLessThan(FULL ? 800 : 1000);
      if (FULL) {
        const [, inContainer, full] = rows as [Measure, Measure, Measure];
        expect(inContainer.rssMB).toBeLessThan(256);
        expect(full.heapMB).toBeGreaterThan(3 * slim.heapMB);
      }
    },
    FULL ? 600_000 : 120_000,
  );
});

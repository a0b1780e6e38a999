/**
 * A small host-path CSI driver of our own, for the local CSI stack (the upstream
 * csi-driver-host-path module is not served by the Go module proxy here). Controller
 * service: a volume is a directory, a snapshot is a tar archive of it, and a
 * volume created from a snapshot is that archive unpacked. The real
 * external-provisioner, csi-snapshotter and snapshot-controller drive it over gRPC.
 * With --node-id it also serves the node side for a real kubelet (dev/node.ts):
 * NodePublishVolume bind-mounts the volume's directory onto the pod's target path, and
 * with --registration-dir it registers with the kubelet's plugin watcher itself, speaking
 * the protocol node-driver-registrar speaks (that module is not served here either).
 * Group controller: a volume group snapshot is one archive per member volume, all cut at one
 * instant (see captureAtOneInstant), each an ordinary snapshot of this driver.
 * Run: node dev/csi-driver.ts --endpoint unix:///path/csi.sock --state-dir DIR --proto csi.proto
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const DRIVER_NAME = 'hostpath.snapcron.io';

interface Meta {
  capacityBytes: number;
  sourceVolumeId?: string;
  createdMs?: number;
  /** Set on a snapshot cut as a member of a volume group snapshot. */
  groupSnapshotId?: string;
}

/** A volume group snapshot, persisted so Get and Delete work after a driver restart. */
interface GroupMeta {
  sourceVolumeIds: string[];
  parameters: Record<string, string>;
  /** Member snapshot ids, in the order of sourceVolumeIds. */
  snapshotIds: string[];
  createdMs: number;
}

type Handler = (call: { request: Record<string, unknown> }) => unknown;
type Callback = (err: grpc.ServiceError | null, value?: unknown) => void;

const fail = (code: grpc.status, details: string): grpc.ServiceError =>
  Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });

export function driverPaths(stateDir: string): { volumes: string; snapshots: string; groups: string } {
  return {
    volumes: join(stateDir, 'volumes'),
    snapshots: join(stateDir, 'snapshots'),
    groups: join(stateDir, 'groups'),
  };
}

/** One entry of a captured directory tree, with its bytes: what a tar archive holds. */
export interface TreeEntry {
  /** `./`, `./dir/`, `./dir/file`: the names `tar -C dir .` writes. */
  path: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  data?: Buffer;
  linkTarget?: string;
}

/**
 * Reads a whole directory tree into memory, synchronously. A file that vanishes between the
 * listing and the read is left out (it was gone at that instant); sockets and FIFOs are skipped.
 */
export function captureTree(root: string): TreeEntry[] {
  const out: TreeEntry[] = [];
  const gone = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT';
  const walk = (rel: string): void => {
    const abs = join(root, rel);
    let st;
    try {
      st = lstatSync(abs);
    } catch (err) {
      if (gone(err)) return;
      throw err;
    }
    const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs };
    try {
      if (st.isDirectory()) {
        const names = readdirSync(abs).sort();
        out.push({ path: rel === '.' ? './' : `${rel}/`, type: 'dir', ...base });
        for (const name of names) walk(`${rel}/${name}`);
      } else if (st.isFile()) {
        out.push({ path: rel, type: 'file', ...base, data: readFileSync(abs) });
      } else if (st.isSymbolicLink()) {
        out.push({ path: rel, type: 'symlink', ...base, linkTarget: readlinkSync(abs) });
      }
    } catch (err) {
      if (!gone(err)) throw err;
    }
  };
  walk('.');
  return out;
}

/** Do two captures hold the same names, kinds, modes and bytes (times aside)? */
export function sameTrees(a: TreeEntry[], b: TreeEntry[]): boolean {
  return (
    a.length === b.length &&
    a.every((e, i) => {
      const f = b[i] as TreeEntry;
      return (
        e.path === f.path &&
        e.type === f.type &&
        e.mode === f.mode &&
        e.linkTarget === f.linkTarget &&
        (e.data === undefined ? f.data === undefined : f.data !== undefined && e.data.equals(f.data))
      );
    })
  );
}

/**
 * Captures every directory at one instant, or returns undefined when writers kept changing them.
 * One synchronous pass over all of them comes first: no await between members, so nothing in
 * this process (another gRPC call, a timer) runs between reading one volume and the next. That
 * alone is not a point in time for writers in other processes (a pod, a test writing into the
 * directories), which keep running during the pass: a file read late can hold a write that came
 * after one read early. So the pass is repeated until two passes in a row agree: every entry
 * then held its captured bytes from its first read to its second, so all of them held them
 * together between the end of the first pass and the start of the second, a crash-consistent
 * point across the volumes, write order kept (unless a writer put back earlier bytes in between).
 */
export function captureAtOneInstant(dirs: string[], attempts = 100): TreeEntry[][] | undefined {
  let previous = dirs.map(captureTree);
  for (let i = 1; i < attempts; i++) {
    const current = dirs.map(captureTree);
    if (current.every((tree, j) => sameTrees(tree, previous[j] as TreeEntry[]))) return current;
    previous = current;
  }
  return undefined;
}

/** `name` as ustar's name and prefix fields (100 and 155 bytes), split at a slash if it must be. */
function ustarName(path: string): { name: string; prefix: string } {
  if (Buffer.byteLength(path) <= 100) return { name: path, prefix: '' };
  for (let i = path.lastIndexOf('/', path.length - 2); i > 0; i = path.lastIndexOf('/', i - 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name) return { name, prefix };
  }
  throw new Error(`path ${path} is too long for a ustar archive (name 100, prefix 155 bytes)`);
}

/** A POSIX ustar archive of `entries`, the format `tar -xf` unpacks in CreateVolume. */
export function tarArchive(entries: TreeEntry[]): Buffer {
  const blocks: Buffer[] = [];
  const octal = (n: number, width: number): string => n.toString(8).padStart(width - 1, '0');
  for (const e of entries) {
    const h = Buffer.alloc(512);
    const put = (text: string, offset: number, width: number): void => {
      h.write(text, offset, width, 'utf8');
    };
    const size = e.type === 'file' ? (e.data?.length ?? 0) : 0;
    const { name, prefix } = ustarName(e.path);
    put(name, 0, 100);
    put(octal(e.mode, 8), 100, 8);
    put(octal(e.uid, 8), 108, 8);
    put(octal(e.gid, 8), 116, 8);
    put(octal(size, 12), 124, 12);
    put(octal(Math.floor(e.mtimeMs / 1000), 12), 136, 12);
    put(' '.repeat(8), 148, 8); // the checksum counts its own field as spaces
    put({ file: '0', symlink: '2', dir: '5' }[e.type], 156, 1);
    if (e.linkTarget !== undefined) {
      if (Buffer.byteLength(e.linkTarget) > 100)
        throw new Error(`symlink ${e.path} -> ${e.linkTarget}: target too long for a ustar archive`);
      put(e.linkTarget, 157, 100);
    }
    put('ustar\0', 257, 6);
    put('00', 263, 2);
    put(prefix, 345, 155);
    let sum = 0;
    for (const byte of h) sum += byte;
    put(`${octal(sum, 7)}\0 `, 148, 8);
    blocks.push(h);
    if (size > 0) {
      blocks.push(e.data as Buffer);
      if (size % 512) blocks.push(Buffer.alloc(512 - (size % 512)));
    }
  }
  blocks.push(Buffer.alloc(1024)); // two zero blocks end the archive
  return Buffer.concat(blocks);
}

/** Are two parameter maps equal (order of keys aside)? */
const sameParameters = (a: Record<string, string>, b: Record<string, string>): boolean =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

/** The node side: which node this process serves, and where to register with its kubelet. */
export interface NodeOptions {
  nodeId: string;
  /** The kubelet's plugins_registry directory; the registration socket goes there. */
  registrationDir?: string;
  /** The kubelet's pluginregistration api.proto (hack/plugin-registration-proto.sh). */
  registrationProto?: string;
}

/** Is `path` a mount point? (/proc/self/mountinfo, field 5, with its octal escapes.) */
function isMountPoint(path: string): boolean {
  const info = readFileSync('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .some(
      (l) =>
        l.split(' ')[4]?.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) ===
        path,
    );
}

export function serve(
  protoPath: string,
  endpoint: string,
  stateDir: string,
  nodeOpts?: NodeOptions,
): Promise<grpc.Server> {
  const { volumes, snapshots, groups } = driverPaths(stateDir);
  for (const dir of [volumes, snapshots, groups]) mkdirSync(dir, { recursive: true });
  const def = protoLoader.loadSync(protoPath, { longs: Number, enums: String, defaults: true, oneofs: true });
  const csi = (
    grpc.loadPackageDefinition(def).csi as Record<string, Record<string, grpc.ServiceClientConstructor>>
  ).v1;
  if (!csi?.Identity || !csi.Controller || !csi.Node || !csi.GroupController)
    throw new Error(
      `${protoPath} has no csi.v1 Identity/Controller/Node/GroupController services (CSI spec v1.11 or later has them all)`,
    );

  const metaPath = (dir: string, id: string): string => join(dir, `${id}.json`);
  const readMeta = (dir: string, id: string): Meta | undefined =>
    existsSync(metaPath(dir, id)) ? (JSON.parse(readFileSync(metaPath(dir, id), 'utf8')) as Meta) : undefined;
  const readGroup = (id: string): GroupMeta | undefined =>
    existsSync(metaPath(groups, id))
      ? (JSON.parse(readFileSync(metaPath(groups, id), 'utf8')) as GroupMeta)
      : undefined;
  const timestamp = (ms: number): { seconds: number; nanos: number } => ({
    seconds: Math.floor(ms / 1000),
    nanos: (ms % 1000) * 1e6,
  });
  const log = (msg: string, fields: Record<string, unknown>): void =>
    void process.stderr.write(`${JSON.stringify({ component: 'csi-driver', msg, ...fields })}\n`);

  const node: Record<string, Handler> = {
    NodeGetInfo: () => ({ nodeId: nodeOpts?.nodeId ?? '' }),
    // No STAGE_UNSTAGE_VOLUME: the kubelet publishes straight into each pod's target path.
    NodeGetCapabilities: () => ({ capabilities: [] }),
    NodePublishVolume: ({ request }) => {
      const id = String(request.volumeId);
      const target = String(request.targetPath);
      const source = join(volumes, id);
      if (!existsSync(source)) throw fail(grpc.status.NOT_FOUND, `volume ${id} not found in ${volumes}`);
      if (!request.volumeCapability || !(request.volumeCapability as { mount?: unknown }).mount)
        throw fail(grpc.status.INVALID_ARGUMENT, `volume ${id}: only filesystem (mount) access is supported`);
      // Idempotent: the kubelet retries a publish it did not see finish.
      if (!isMountPoint(target)) {
        mkdirSync(target, { recursive: true });
        execFileSync('mount', ['--bind', source, target]);
        if (request.readonly) execFileSync('mount', ['-o', 'remount,bind,ro', target]);
      }
      log('volume published', { volume: id, target, readonly: Boolean(request.readonly) });
      return {};
    },
    NodeUnpublishVolume: ({ request }) => {
      const target = String(request.targetPath);
      if (isMountPoint(target)) execFileSync('umount', [target]);
      // Only an empty directory: a failed umount must never let rm reach the volume's data.
      if (existsSync(target)) rmdirSync(target);
      log('volume unpublished', { volume: String(request.volumeId), target });
      return {};
    },
  };
  const identity: Record<string, Handler> = {
    GetPluginInfo: () => ({ name: DRIVER_NAME, vendorVersion: '0.1.0' }),
    GetPluginCapabilities: () => ({
      capabilities: ['CONTROLLER_SERVICE', 'GROUP_CONTROLLER_SERVICE'].map((type) => ({ service: { type } })),
    }),
    Probe: () => ({ ready: { value: true } }),
  };
  const controller: Record<string, Handler> = {
    ControllerGetCapabilities: () => ({
      capabilities: ['CREATE_DELETE_VOLUME', 'CREATE_DELETE_SNAPSHOT'].map((type) => ({ rpc: { type } })),
    }),
    ValidateVolumeCapabilities: ({ request }) => ({
      confirmed: { volumeCapabilities: request.volumeCapabilities },
    }),
    CreateVolume: ({ request }) => {
      const id = String(request.name);
      const capacityBytes = Number(
        (request.capacityRange as { requiredBytes?: number } | null)?.requiredBytes ?? 1 << 30,
      );
      const dir = join(volumes, id);
      const source = request.volumeContentSource as { snapshot?: { snapshotId: string } } | null;
      if (!existsSync(dir)) {
        mkdirSync(dir);
        if (source?.snapshot) {
          const archive = join(snapshots, `${source.snapshot.snapshotId}.tar`);
          if (!existsSync(archive)) {
            rmSync(dir, { recursive: true });
            throw fail(grpc.status.NOT_FOUND, `snapshot ${source.snapshot.snapshotId} not found`);
          }
          execFileSync('tar', ['-xf', archive, '-C', dir]);
        }
        writeFileSync(metaPath(volumes, id), JSON.stringify({ capacityBytes } satisfies Meta));
        log('volume created', { volume: id, fromSnapshot: source?.snapshot?.snapshotId });
      }
      return {
        volume: {
          volumeId: id,
          capacityBytes,
          volumeContext: {},
          ...(source ? { contentSource: source } : {}),
        },
      };
    },
    DeleteVolume: ({ request }) => {
      const id = String(request.volumeId);
      rmSync(join(volumes, id), { recursive: true, force: true });
      rmSync(metaPath(volumes, id), { force: true });
      log('volume deleted', { volume: id });
      return {};
    },
    CreateSnapshot: ({ request }) => {
      const id = String(request.name);
      const source = String(request.sourceVolumeId);
      const volume = readMeta(volumes, source);
      if (!volume) throw fail(grpc.status.NOT_FOUND, `volume ${source} not found`);
      let meta = readMeta(snapshots, id);
      if (!meta) {
        execFileSync('tar', ['-cf', join(snapshots, `${id}.tar`), '-C', join(volumes, source), '.']);
        meta = { capacityBytes: volume.capacityBytes, sourceVolumeId: source, createdMs: Date.now() };
        writeFileSync(metaPath(snapshots, id), JSON.stringify(meta));
        log('snapshot created', {
          snapshot: id,
          volume: source,
          bytes: statSync(join(snapshots, `${id}.tar`)).size,
        });
      }
      return {
        snapshot: {
          snapshotId: id,
          sourceVolumeId: source,
          sizeBytes: meta.capacityBytes,
          readyToUse: true,
          creationTime: timestamp(meta.createdMs ?? Date.now()),
        },
      };
    },
    DeleteSnapshot: ({ request }) => {
      const id = String(request.snapshotId);
      rmSync(join(snapshots, `${id}.tar`), { force: true });
      rmSync(metaPath(snapshots, id), { force: true });
      log('snapshot deleted', { snapshot: id });
      return {};
    },
  };

  /** The group's CSI message: its members as ordinary snapshots, ready while their archives exist. */
  const groupMessage = (id: string, group: GroupMeta): Record<string, unknown> => {
    const members = group.snapshotIds.map((snapshotId, i) => ({
      snapshotId,
      sourceVolumeId: group.sourceVolumeIds[i],
      sizeBytes: readMeta(snapshots, snapshotId)?.capacityBytes ?? 0,
      creationTime: timestamp(group.createdMs),
      readyToUse: existsSync(join(snapshots, `${snapshotId}.tar`)),
      groupSnapshotId: id,
    }));
    return {
      groupSnapshotId: id,
      snapshots: members,
      creationTime: timestamp(group.createdMs),
      readyToUse: members.every((m) => m.readyToUse),
    };
  };
  /** snapshot_ids, when the CO sends them, must be the group's members (the spec's mismatch check). */
  const checkMembers = (id: string, group: GroupMeta, requested: unknown): void => {
    const ids = (requested as string[] | undefined) ?? [];
    if (ids.length && [...ids].sort().join() !== [...group.snapshotIds].sort().join())
      throw fail(
        grpc.status.INVALID_ARGUMENT,
        `group snapshot ${id} has snapshots [${group.snapshotIds.join(', ')}], not [${ids.join(', ')}]`,
      );
  };
  const groupController: Record<string, Handler> = {
    GroupControllerGetCapabilities: () => ({
      capabilities: [{ rpc: { type: 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT' } }],
    }),
    CreateVolumeGroupSnapshot: ({ request }) => {
      const id = String(request.name);
      const sourceVolumeIds = ((request.sourceVolumeIds as string[] | undefined) ?? []).map(String);
      const parameters = (request.parameters as Record<string, string> | undefined) ?? {};
      if (!id) throw fail(grpc.status.INVALID_ARGUMENT, 'CreateVolumeGroupSnapshot: name is required');
      if (!sourceVolumeIds.length || new Set(sourceVolumeIds).size !== sourceVolumeIds.length)
        throw fail(
          grpc.status.INVALID_ARGUMENT,
          `group snapshot ${id}: source_volume_ids must name each volume once, got [${sourceVolumeIds.join(', ')}]`,
        );
      // Idempotent by name: the same volumes and parameters get the group cut the first time.
      const existing = readGroup(id);
      if (existing) {
        const same =
          [...existing.sourceVolumeIds].sort().join() === [...sourceVolumeIds].sort().join() &&
          sameParameters(existing.parameters, parameters);
        if (!same)
          throw fail(
            grpc.status.ALREADY_EXISTS,
            `group snapshot ${id} already exists for volumes [${existing.sourceVolumeIds.join(', ')}] with parameters ${JSON.stringify(existing.parameters)}; use another name for [${sourceVolumeIds.join(', ')}] with ${JSON.stringify(parameters)}`,
          );
        return { groupSnapshot: groupMessage(id, existing) };
      }
      const sources = sourceVolumeIds.map((v) => {
        const meta = readMeta(volumes, v);
        if (!meta || !existsSync(join(volumes, v)))
          throw fail(grpc.status.NOT_FOUND, `group snapshot ${id}: volume ${v} not found in ${volumes}`);
        return meta;
      });
      const captured = captureAtOneInstant(sourceVolumeIds.map((v) => join(volumes, v)));
      // The spec: a group snapshot gives write-order consistency or fails. ABORTED makes the CO retry.
      if (!captured)
        throw fail(
          grpc.status.ABORTED,
          `group snapshot ${id}: volumes [${sourceVolumeIds.join(', ')}] kept changing during every capture; retry when writes pause`,
        );
      const createdMs = Date.now();
      // Only now, with every member's bytes in memory, the archives are made (all of them before
      // any is written, so a tree tar cannot hold fails with nothing on disk) and written. The
      // group's own record comes last: a crash before it leaves no group; a retry cuts it afresh.
      let archives: Buffer[];
      try {
        archives = captured.map(tarArchive);
      } catch (err) {
        throw fail(grpc.status.FAILED_PRECONDITION, `group snapshot ${id}: ${(err as Error).message}`);
      }
      const snapshotIds = sourceVolumeIds.map((v) => `${id}-${v}`);
      snapshotIds.forEach((snapshotId, i) => {
        const archive = join(snapshots, `${snapshotId}.tar`);
        writeFileSync(`${archive}.tmp`, archives[i] as Buffer);
        renameSync(`${archive}.tmp`, archive);
        const meta: Meta = {
          capacityBytes: (sources[i] as Meta).capacityBytes,
          sourceVolumeId: sourceVolumeIds[i],
          createdMs,
          groupSnapshotId: id,
        };
        writeFileSync(metaPath(snapshots, snapshotId), JSON.stringify(meta));
      });
      const group: GroupMeta = { sourceVolumeIds, parameters, snapshotIds, createdMs };
      writeFileSync(metaPath(groups, id), JSON.stringify(group));
      log('group snapshot created', { groupSnapshot: id, volumes: sourceVolumeIds, snapshots: snapshotIds });
      return { groupSnapshot: groupMessage(id, group) };
    },
    DeleteVolumeGroupSnapshot: ({ request }) => {
      const id = String(request.groupSnapshotId);
      if (!id)
        throw fail(grpc.status.INVALID_ARGUMENT, 'DeleteVolumeGroupSnapshot: group_snapshot_id is required');
      const group = readGroup(id);
      if (group) checkMembers(id, group, request.snapshotIds);
      // Idempotent: an unknown group is already deleted, though members a crashed create left
      // behind (their meta names this group) still go.
      const members =
        group?.snapshotIds ??
        ((request.snapshotIds as string[] | undefined) ?? []).filter(
          (s) => readMeta(snapshots, s)?.groupSnapshotId === id,
        );
      for (const s of members) {
        rmSync(join(snapshots, `${s}.tar`), { force: true });
        rmSync(metaPath(snapshots, s), { force: true });
      }
      rmSync(metaPath(groups, id), { force: true });
      log('group snapshot deleted', { groupSnapshot: id, snapshots: members });
      return {};
    },
    GetVolumeGroupSnapshot: ({ request }) => {
      const id = String(request.groupSnapshotId);
      const group = readGroup(id);
      if (!group) throw fail(grpc.status.NOT_FOUND, `group snapshot ${id} not found in ${groups}`);
      checkMembers(id, group, request.snapshotIds);
      return { groupSnapshot: groupMessage(id, group) };
    },
  };

  const wrap = (handlers: Record<string, Handler>): grpc.UntypedServiceImplementation =>
    Object.fromEntries(
      Object.entries(handlers).map(([name, fn]) => [
        name,
        (call: { request: Record<string, unknown> }, cb: Callback) => {
          try {
            cb(null, fn(call));
          } catch (err) {
            const e = err as grpc.ServiceError;
            cb(e.code !== undefined ? e : fail(grpc.status.INTERNAL, String(err)));
          }
        },
      ]),
    );

  const server = new grpc.Server();
  server.addService(csi.Identity.service, wrap(identity));
  server.addService(csi.Controller.service, wrap(controller));
  server.addService(csi.GroupController.service, wrap(groupController));
  if (nodeOpts) server.addService(csi.Node.service, wrap(node));
  const bind = (srv: grpc.Server, address: string): Promise<grpc.Server> =>
    new Promise((resolve, reject) =>
      srv.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(srv),
      ),
    );
  if (!nodeOpts?.registrationDir) return bind(server, endpoint);

  // The kubelet's plugin watcher finds <dir>/<driver>-reg.sock, asks GetInfo for the driver's
  // name and CSI endpoint, and reports back whether it registered the driver.
  if (!nodeOpts.registrationProto) throw new Error('--registration-dir needs --registration-proto');
  const regDef = protoLoader.loadSync(nodeOpts.registrationProto, { defaults: true });
  const reg = (
    grpc.loadPackageDefinition(regDef).pluginregistration as Record<string, grpc.ServiceClientConstructor>
  ).Registration;
  if (!reg) throw new Error(`${nodeOpts.registrationProto} has no pluginregistration.Registration service`);
  const regSocket = join(nodeOpts.registrationDir, `${DRIVER_NAME}-reg.sock`);
  const csiSocket = endpoint.replace(/^unix:\/\//, '');
  server.addService(
    reg.service,
    wrap({
      GetInfo: () => ({
        type: 'CSIPlugin',
        name: DRIVER_NAME,
        endpoint: csiSocket,
        supportedVersions: ['1.0.0'],
      }),
      NotifyRegistrationStatus: ({ request }) => {
        log(request.pluginRegistered ? 'registered with the kubelet' : 'kubelet refused registration', {
          error: request.error,
        });
        return {};
      },
    }),
  );
  mkdirSync(nodeOpts.registrationDir, { recursive: true });
  // A stale socket from an earlier run would make bind fail with EADDRINUSE.
  for (const sock of [regSocket, csiSocket]) if (existsSync(sock)) unlinkSync(sock);
  return bind(server, endpoint).then((srv) => bind(srv, `unix://${regSocket}`));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      endpoint: { type: 'string' },
      'state-dir': { type: 'string' },
      proto: { type: 'string' },
      'node-id': { type: 'string' },
      'registration-dir': { type: 'string' },
      'registration-proto': { type: 'string' },
    },
  });
  if (!values.endpoint || !values['state-dir'] || !values.proto) {
    console.error(
      'usage: node dev/csi-driver.ts --endpoint unix:///path/csi.sock --state-dir DIR --proto csi.proto [--node-id NODE [--registration-dir /var/lib/kubelet/plugins_registry --registration-proto api.proto]]',
    );
    process.exit(2);
  }
  const nodeId = values['node-id'];
  const server = await serve(
    values.proto,
    values.endpoint,
    values['state-dir'],
    nodeId
      ? {
          nodeId,
          registrationDir: values['registration-dir'],
          registrationProto: values['registration-proto'],
        }
      : undefined,
  );
  process.stderr.write(
    `${JSON.stringify({ component: 'csi-driver', msg: 'serving', endpoint: values.endpoint })}\n`,
  );
  process.once('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
}

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
 * Run: node dev/csi-driver.ts --endpoint unix:///path/csi.sock --state-dir DIR --proto csi.proto
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readFileSync,
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
}

type Handler = (call: { request: Record<string, unknown> }) => unknown;
type Callback = (err: grpc.ServiceError | null, value?: unknown) => void;

const fail = (code: grpc.status, details: string): grpc.ServiceError =>
  Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });

export function driverPaths(stateDir: string): { volumes: string; snapshots: string } {
  return { volumes: join(stateDir, 'volumes'), snapshots: join(stateDir, 'snapshots') };
}

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
  const { volumes, snapshots } = driverPaths(stateDir);
  mkdirSync(volumes, { recursive: true });
  mkdirSync(snapshots, { recursive: true });
  const def = protoLoader.loadSync(protoPath, { longs: Number, enums: String, defaults: true, oneofs: true });
  const csi = (
    grpc.loadPackageDefinition(def).csi as Record<string, Record<string, grpc.ServiceClientConstructor>>
  ).v1;
  if (!csi?.Identity || !csi.Controller || !csi.Node)
    throw new Error(`${protoPath} has no csi.v1 Identity/Controller/Node services`);

  const metaPath = (dir: string, id: string): string => join(dir, `${id}.json`);
  const readMeta = (dir: string, id: string): Meta | undefined =>
    existsSync(metaPath(dir, id)) ? (JSON.parse(readFileSync(metaPath(dir, id), 'utf8')) as Meta) : undefined;
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
    GetPluginCapabilities: () => ({ capabilities: [{ service: { type: 'CONTROLLER_SERVICE' } }] }),
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
      const created = meta.createdMs ?? Date.now();
      return {
        snapshot: {
          snapshotId: id,
          sourceVolumeId: source,
          sizeBytes: meta.capacityBytes,
          readyToUse: true,
          creationTime: { seconds: Math.floor(created / 1000), nanos: (created % 1000) * 1e6 },
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

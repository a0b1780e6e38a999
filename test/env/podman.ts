/**
 * The snapcron image run the way a kubelet runs a pod's container, with podman: the
 * container's args, env and security context from a rendered manifest, the ServiceAccount
 * volume at its in-cluster path, the API server's address in KUBERNETES_SERVICE_HOST/PORT.
 * podman runs with hack/containers.conf (runc, cgroupfs, ulimits these machines allow).
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Container, V1PodSpec } from '@kubernetes/client-node';
import { onTestFailed } from 'vitest';
import { hackScriptOutput } from '../../dev/hack-script.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const podmanEnv = { ...process.env, CONTAINERS_CONF: join(ROOT, 'hack/containers.conf') };

/** Where a kubelet mounts a pod's ServiceAccount token, CA and namespace. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Builds the image with hack/build-image.sh (layers cached: seconds when nothing changed) and returns its name. */
export function buildImage(): string {
  return hackScriptOutput('hack/build-image.sh');
}

export function podman(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('podman', args, { env: podmanEnv, encoding: 'utf8' }, (err, stdout, stderr) =>
      err ? reject(new Error(`podman ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    ),
  );
}

/** A ServiceAccount volume as the kubelet projects it: token, ca.crt and namespace, readable by any user. */
export function serviceAccountVolume(files: { token: string; caCrt: string; namespace: string }): string {
  const dir = mkdtempSync(join(tmpdir(), 'snapcron-sa-'));
  chmodSync(dir, 0o755);
  for (const [name, text] of [
    ['token', files.token],
    ['ca.crt', files.caCrt],
    ['namespace', files.namespace],
  ] as const) {
    writeFileSync(join(dir, name), text, { mode: 0o644 });
  }
  return dir;
}

export interface PodContainer {
  name: string;
  /** Parsed JSON log lines (pino) so far. */
  logs: () => Record<string, unknown>[];
  output: () => string;
  /** The container's exit code, as `podman run` reports it. */
  exited: Promise<number | null>;
  /** `podman stop` (SIGTERM, SIGKILL after `graceSeconds`): the exit code and how long it took. */
  stop: (graceSeconds?: number) => Promise<{ code: number | null; ms: number }>;
}

const started = new Set<string>();
/** Removes every container this process started and has not seen exit (a failed test's leftovers). */
export async function removeContainers(): Promise<void> {
  for (const name of started) await podman(['rm', '-f', '--time', '0', name]).catch(() => undefined);
  started.clear();
}

/**
 * Runs `container` of `pod` as a kubelet would: its args (as given: the caller may swap
 * ports), env, user/group, read-only root filesystem (no tmpfs added: a kubelet adds none),
 * no-new-privileges, dropped capabilities and memory limit; the pod's hostname; the
 * ServiceAccount volume read-only at its in-cluster path; the host's network, where the API
 * server listens on loopback.
 */
export function runLikeKubelet(o: {
  image: string;
  pod: V1PodSpec;
  container: V1Container;
  args: string[];
  hostname: string;
  serviceAccountDir: string;
  apiServer: URL;
}): PodContainer {
  const sc = { ...o.pod.securityContext, ...o.container.securityContext };
  const user = sc.runAsUser ?? 65532;
  const group = sc.runAsGroup ?? user;
  const flags = [
    'run',
    '--rm',
    `--name=${o.hostname}`,
    `--hostname=${o.hostname}`,
    '--network=host',
    `--user=${user}:${group}`,
    `--volume=${o.serviceAccountDir}:${SERVICE_ACCOUNT_DIR}:ro`,
    `--env=KUBERNETES_SERVICE_HOST=${o.apiServer.hostname}`,
    `--env=KUBERNETES_SERVICE_PORT=${o.apiServer.port}`,
    ...(o.container.env ?? []).map((e) => `--env=${e.name}=${e.value ?? ''}`),
  ];
  if (sc.readOnlyRootFilesystem) flags.push('--read-only', '--read-only-tmpfs=false');
  if (sc.allowPrivilegeEscalation === false) flags.push('--security-opt=no-new-privileges');
  for (const cap of sc.capabilities?.drop ?? []) flags.push(`--cap-drop=${cap}`);
  const memory = o.container.resources?.limits?.memory;
  if (memory) flags.push(`--memory=${memory.replace(/i$/, '').toLowerCase()}`);
  const proc = spawn('podman', [...flags, o.image, ...o.args], {
    env: podmanEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.add(o.hostname);
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code) => {
      started.delete(o.hostname);
      resolve(code);
    }),
  );
  onTestFailed(
    () => void process.stderr.write(`--- container ${o.hostname} output ---\n${out.slice(-20_000)}\n`),
  );
  return {
    name: o.hostname,
    output: () => out,
    logs: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    exited,
    stop: async (graceSeconds = 30) => {
      const start = Date.now();
      await podman(['stop', `--time=${graceSeconds}`, o.hostname]).catch(() => undefined);
      const code = await exited;
      return { code, ms: Date.now() - start };
    },
  };
}

/** Removes a directory serviceAccountVolume made. */
export const removeVolume = (dir: string): void => rmSync(dir, { recursive: true, force: true });

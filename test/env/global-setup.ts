/**
 * vitest global setup: one control plane per run. Tests run in worker processes, so
 * the few operations that need this process (restarting kube-apiserver, minting a
 * client certificate) go through a tiny loopback control channel.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { ControlPlane } from '../../dev/control-plane.ts';

/** Runs a build script with its progress on stderr; rejects with its exit code. */
function build(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn('bash', [fileURLToPath(new URL(`../../${script}`, import.meta.url))], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    proc.once('error', reject);
    proc.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${script} exited with ${code}`)),
    );
  });
}

let cp: ControlPlane | undefined;
let channel: Server | undefined;

export async function setup(project: TestProject): Promise<void> {
  // On a fresh machine the first `npm test` builds the CSI binaries here, where no test
  // timeout applies (minutes, with progress), not in the e2e test's hook; later runs find
  // them cached at once. ControlPlane.start builds its own binaries just below.
  await build('hack/build-csi.sh');
  await build('hack/csi-proto.sh');
  // kubectl, from the same Kubernetes module and version, for the report tests' `kubectl snapcron`.
  await build('hack/build-kubectl.sh');
  // promtool, from the Prometheus Go module, for the monitoring overlay's alert and /metrics checks.
  await build('hack/build-promtool.sh');
  // helm, from its Go module, for install.test.ts (lint, template, install of the chart).
  await build('hack/build-helm.sh');
  cp = await ControlPlane.start();
  const plane = cp;
  channel = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    void (async () => {
      try {
        if (url.pathname === '/restart-apiserver') {
          await plane.restartApiServer(Number(url.searchParams.get('downMs') ?? 0));
          res.end('ok');
        } else if (url.pathname === '/kubeconfig-for') {
          const groups = url.searchParams.getAll('group');
          res.end(await plane.kubeconfigFor(url.searchParams.get('user') ?? '', groups));
        } else {
          res.writeHead(404).end();
        }
      } catch (err) {
        res.writeHead(500).end(String(err));
      }
    })();
  });
  await new Promise<void>((resolve) => channel?.listen(0, '127.0.0.1', resolve));
  const addr = channel.address();
  project.provide('kubeconfig', plane.kubeconfigPath);
  project.provide('controlChannel', `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`);
}

export async function teardown(): Promise<void> {
  await new Promise<void>((resolve) => (channel ? channel.close(() => resolve()) : resolve()));
  await cp?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfig: string;
    controlChannel: string;
  }
}

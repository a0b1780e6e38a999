/**
 * vitest global setup: one control plane per run. Tests run in worker processes, so
 * the few operations that need this process (restarting kube-apiserver, minting a
 * client certificate) go through a tiny loopback control channel.
 */
import { createServer, type Server } from 'node:http';
import type { TestProject } from 'vitest/node';
import { ControlPlane } from './control-plane.ts';

let cp: ControlPlane | undefined;
let channel: Server | undefined;

export async function setup(project: TestProject): Promise<void> {
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

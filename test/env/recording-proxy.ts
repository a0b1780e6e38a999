/**
 * A loopback proxy in front of the test API server that records every request a client
 * makes through it: hand the client the proxy's kubeconfig and read back exactly which calls
 * it made (the API server's own metrics also count the CSI stack's and the controllers').
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { request } from 'node:https';
import { join } from 'node:path';
import { kubeConfig, kubeconfigPath } from './kube.ts';
import { writeLocalKubeconfig } from '../support/kubeconfig.ts';

export interface RecordedRequest {
  method: string;
  /** Path and query, e.g. `/api/v1/namespaces/x/persistentvolumeclaims?limit=500`. */
  url: string;
}

export interface RecordingProxy {
  /** A kubeconfig that talks to the API server through the proxy, as the admin. */
  kubeconfig: string;
  requests: RecordedRequest[];
  close: () => Promise<void>;
}

/** Starts the proxy; its kubeconfig is written into `dir`. */
export async function recordingProxy(dir: string, source = kubeconfigPath()): Promise<RecordingProxy> {
  const kc = kubeConfig(source);
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const b64 = (v: string | undefined): Buffer => Buffer.from(v ?? '', 'base64');
  const upstream = new URL(cluster?.server ?? '');
  const requests: RecordedRequest[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '' });
    const headers = { ...req.headers, host: upstream.host };
    const out = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers,
        ca: b64(cluster?.caData),
        cert: b64(user?.certData),
        key: b64(user?.keyData),
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    out.once('error', (err) => {
      res.writeHead(502);
      res.end(String(err));
    });
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const kubeconfig = join(dir, 'recording-proxy.kubeconfig');
  writeLocalKubeconfig(kubeconfig, `http://127.0.0.1:${port}`);
  return {
    kubeconfig,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

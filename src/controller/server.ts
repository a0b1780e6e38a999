/** /metrics, /healthz and /readyz on one plain HTTP port. */
import type { Server } from 'node:http';
import type { ReportResponse } from '../report/http.ts';
import type { Metrics } from './metrics.ts';

// Not `import`: see kube/rest.ts (an ES import of node:http loads undici for its WebSocket export).
const { createServer } = process.getBuiltinModule('node:http');

/** /metrics, /healthz, /readyz and, when given, /report (the retention report from the caches). */
export function startHttpServer(
  address: string,
  metrics: Metrics,
  isReady: () => boolean,
  report?: (url: string) => ReportResponse,
): Promise<{ server: Server; port: number }> {
  const [host, portText] = address.includes(':')
    ? [address.slice(0, address.lastIndexOf(':')), address.slice(address.lastIndexOf(':') + 1)]
    : ['', address];
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      metrics.registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        })
        .catch((err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        });
    } else if (path === '/report' && report) {
      if (!isReady()) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('caches not synced\n');
        return;
      }
      const r = report(req.url ?? '/report');
      res.writeHead(r.status, { 'content-type': r.contentType });
      res.end(r.body);
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
    } else if (path === '/readyz') {
      const ok = isReady();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'caches not synced\n');
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(portText), host || undefined, () => {
      const addr = server.address();
      resolve({ server, port: typeof addr === 'object' && addr ? addr.port : Number(portText) });
    });
  });
}

/** A kubeconfig file for a local test server, as JSON (a kubeconfig may be JSON; the client reads it without the YAML parser). */
import { writeFileSync } from 'node:fs';

/**
 * Writes a kubeconfig naming `server` with TLS verification off (a test server's certificate,
 * or plain HTTP on loopback, which client-node accepts only so), `user` as the user entry.
 */
export function writeLocalKubeconfig(
  file: string,
  server: string,
  user: { token?: string } = {},
  namespace?: string,
): string {
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'local', cluster: { server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'local', user }],
      contexts: [
        { name: 'local', context: { cluster: 'local', user: 'local', ...(namespace ? { namespace } : {}) } },
      ],
      'current-context': 'local',
    }),
  );
  return file;
}

/**
 * snapcron's own client (src/kube: kubeconfig.ts, rest.ts) against the real API server, with
 * each way a kubeconfig can log in that README "Connecting to the API server" names: a client
 * certificate, a ServiceAccount token (inline, and from a file), an exec credential plugin
 * (a token, or a client certificate), and a plugin whose first token the server refuses.
 * The API server says who it took us for (SelfSubjectReview).
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kube } from '../../src/kube/client.ts';
import { kube, kubeconfigFor, kubeconfigPath, useNamespace } from '../env/kube.ts';

interface Kubeconfig {
  clusters: { name: string; cluster: Record<string, unknown> }[];
  users: { name: string; user: Record<string, string> }[];
}

/** Who the API server takes the client for. */
const whoAmI = async (k: Kube): Promise<string> =>
  (
    await k.rest.send<{ status: { userInfo: { username: string } } }>(
      'POST',
      '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } },
    )
  ).status.userInfo.username;

describe('snapcron’s Kubernetes client on a real API server', () => {
  const ns = useNamespace('client');
  let dir: string;
  let cluster: Record<string, unknown>;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'snapcron-client-'));
    cluster = (parse(readFileSync(kubeconfigPath(), 'utf8')) as Kubeconfig).clusters[0]?.cluster ?? {};
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A kubeconfig file for the test cluster with this user entry. */
  const kubeconfigWith = (name: string, user: Record<string, unknown>): string => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster }],
        users: [{ name, user }],
        contexts: [{ name, context: { cluster: 'test', user: name, namespace: ns() } }],
        'current-context': name,
      }),
    );
    return file;
  };
  /** An exec credential plugin: a script printing `credential` (status), counting its runs in `<name>.runs`. */
  const plugin = (name: string, script: string): { command: string; runs: () => number } => {
    const command = join(dir, `${name}.sh`);
    writeFileSync(command, `#!/bin/sh\necho run >> ${join(dir, `${name}.runs`)}\n${script}\n`);
    chmodSync(command, 0o755);
    const runs = (): number => {
      try {
        return readFileSync(join(dir, `${name}.runs`), 'utf8')
          .split('\n')
          .filter(Boolean).length;
      } catch {
        return 0;
      }
    };
    return { command, runs };
  };
  const credential = (status: Record<string, string>): string =>
    JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status });
  /** A ServiceAccount in the test namespace and a token for it (TokenRequest). */
  const serviceAccountToken = async (name: string): Promise<string> => {
    const k = kube();
    await k.rest.send('POST', `/api/v1/namespaces/${ns()}/serviceaccounts`, { body: { metadata: { name } } });
    const t = await k.core.createNamespacedServiceAccountToken({
      namespace: ns(),
      name,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    return t.status?.token ?? '';
  };

  it('a client certificate (the harness’s own kubeconfig) and the context’s namespace', async () => {
    const k = Kube.fromFile(await kubeconfigFor('cert-user'));
    expect(await whoAmI(k)).toBe('cert-user');
  });

  it('a ServiceAccount token, inline and from a token file', async () => {
    const token = await serviceAccountToken('reader');
    const sa = `system:serviceaccount:${ns()}:reader`;
    const inline = Kube.fromFile(kubeconfigWith('inline', { token }));
    expect(await whoAmI(inline)).toBe(sa);
    expect(inline.defaultNamespace()).toBe(ns());
    const file = join(dir, 'token');
    writeFileSync(file, `${token}\n`);
    expect(await whoAmI(Kube.fromFile(kubeconfigWith('file', { tokenFile: file })))).toBe(sa);
  });

  it('an exec plugin’s token, run once while it has not expired', async () => {
    const token = await serviceAccountToken('exec');
    const expires = new Date(Date.now() + 3_600_000).toISOString();
    const p = plugin('token', `echo '${credential({ token, expirationTimestamp: expires })}'`);
    const k = Kube.fromFile(
      kubeconfigWith('exec-token', {
        exec: { apiVersion: 'client.authentication.k8s.io/v1', command: p.command },
      }),
    );
    for (let i = 0; i < 3; i++) expect(await whoAmI(k)).toBe(`system:serviceaccount:${ns()}:exec`);
    expect(p.runs()).toBe(1);
  });

  it('an exec plugin’s client certificate', async () => {
    const issued = parse(readFileSync(await kubeconfigFor('exec-cert-user'), 'utf8')) as Kubeconfig;
    const user = issued.users[0]?.user ?? {};
    const pem = (b64: string | undefined): string => Buffer.from(b64 ?? '', 'base64').toString();
    const p = plugin(
      'cert',
      `cat <<'EOF'\n${credential({
        clientCertificateData: pem(user['client-certificate-data']),
        clientKeyData: pem(user['client-key-data']),
      })}\nEOF`,
    );
    const k = Kube.fromFile(
      kubeconfigWith('exec-cert', {
        exec: { apiVersion: 'client.authentication.k8s.io/v1', command: p.command },
      }),
    );
    expect(await whoAmI(k)).toBe('exec-cert-user');
  });

  it('a token the server refuses (401) is asked for again once, and the next one is used', async () => {
    const token = await serviceAccountToken('rotated');
    // First run: a token the server does not know; every run after: the good one.
    const p = plugin(
      'rotating',
      `if [ "$(wc -l < ${join(dir, 'rotating.runs')})" -le 1 ]; then echo '${credential({ token: 'not-a-token' })}'; else echo '${credential({ token })}'; fi`,
    );
    const k = Kube.fromFile(
      kubeconfigWith('exec-rotating', {
        exec: { apiVersion: 'client.authentication.k8s.io/v1', command: p.command },
      }),
    );
    expect(await whoAmI(k)).toBe(`system:serviceaccount:${ns()}:rotated`);
    expect(p.runs()).toBe(2);
  });

  it('a kubeconfig it cannot use is refused when loaded, naming the user and the fix', () => {
    const file = kubeconfigWith('oidc', { 'auth-provider': { name: 'oidc' } });
    expect(() => Kube.fromFile(file)).toThrow(/auth-provider[\s\S]*exec/);
  });
});

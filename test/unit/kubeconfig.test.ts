import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadDefault, loadFile, loadInCluster } from '../../src/kube/kubeconfig.ts';

const CA = '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN EC PRIVATE KEY-----\nKEY\n-----END EC PRIVATE KEY-----\n';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'kubeconfig-test-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function write(rel: string, content: string, mode?: number): string {
  const file = path.join(dir, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  if (mode !== undefined) chmodSync(file, mode);
  return file;
}

interface Opts {
  cluster?: Record<string, unknown>;
  user?: Record<string, unknown>;
  context?: Record<string, unknown>;
  currentContext?: string | null;
}

/** A kubeconfig with one cluster "c", user "u" and context "ctx" (current), fields overridable. */
function kubeconfig(rel: string, o: Opts = {}): string {
  return write(
    rel,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:6443', ...o.cluster } }],
      users: [{ name: 'u', user: { token: 't0', ...o.user } }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u', ...o.context } }],
      ...(o.currentContext === null ? {} : { 'current-context': o.currentContext ?? 'ctx' }),
    }),
  );
}

/** A clock the test moves by hand. */
function clock(start = Date.parse('2030-01-01T00:00:00Z')) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

/** An exec plugin: a shell script that counts its runs and prints `body` (shell, may use $n, the run number). */
function plugin(name: string, body: string): { command: string; runs: () => number } {
  const counter = path.join(dir, `${name}.runs`);
  const command = write(
    name,
    `#!/bin/sh\necho x >> '${counter}'\nn=$(wc -l < '${counter}' | tr -d ' ')\n${body}\n`,
    0o755,
  );
  return {
    command,
    runs: () => {
      try {
        return readFileSync(counter, 'utf8').trim().split('\n').length;
      } catch {
        return 0;
      }
    },
  };
}

const execCredential = (apiVersion: string, status: Record<string, unknown>) =>
  JSON.stringify({ apiVersion, kind: 'ExecCredential', status });

describe('loadFile: cluster and TLS', () => {
  it('reads -data fields, strips the trailing slash, takes the context namespace', async () => {
    const file = kubeconfig('config', {
      cluster: {
        server: 'https://api.example:6443/',
        'certificate-authority-data': b64(CA),
        'tls-server-name': 'kubernetes.default',
      },
      user: { token: null, 'client-certificate-data': b64(CERT), 'client-key-data': b64(KEY) },
      context: { namespace: 'team-a' },
    });
    const access = loadFile(file);
    expect(access.server).toBe('https://api.example:6443');
    expect(access.ca?.toString()).toBe(CA);
    expect(access.servername).toBe('kubernetes.default');
    expect(access.insecure).toBe(false);
    expect(access.namespace).toBe('team-a');
    expect(access.source).toBe(`kubeconfig ${file}, context ctx`);
    const creds = await access.credentials();
    expect(creds.cert?.toString()).toBe(CERT);
    expect(creds.key?.toString()).toBe(KEY);
    expect(creds.authorization).toBeUndefined();
  });

  it('reads a JSON kubeconfig (kubectl config view -o json) as the same YAML, and a YAML one that starts like JSON', async () => {
    const yamlFile = kubeconfig('config', { cluster: { 'certificate-authority-data': b64(CA) } });
    const asJson = write('config.json', JSON.stringify(parse(readFileSync(yamlFile, 'utf8'))));
    const [fromYaml, fromJson] = [loadFile(yamlFile), loadFile(asJson)];
    expect(fromJson.server).toBe(fromYaml.server);
    expect(fromJson.ca?.toString()).toBe(CA);
    expect((await fromJson.credentials()).authorization).toBe('Bearer t0');
    // A flow mapping is YAML that JSON.parse refuses: the YAML parser reads it.
    const flow = write(
      'flow',
      "{apiVersion: v1, kind: Config, clusters: [{name: c, cluster: {server: 'https://10.0.0.2:6443'}}], users: [{name: u, user: {token: t1}}], contexts: [{name: ctx, context: {cluster: c, user: u}}], current-context: ctx}",
    );
    expect(loadFile(flow).server).toBe('https://10.0.0.2:6443');
  });

  it('resolves file fields against the kubeconfig directory, not the working directory', async () => {
    write('kube/pki/ca.crt', CA);
    write('kube/pki/client.crt', CERT);
    const keyFile = write('elsewhere/client.key', KEY);
    const file = kubeconfig('kube/config', {
      cluster: { 'certificate-authority': 'pki/ca.crt', 'insecure-skip-tls-verify': true },
      user: { token: null, 'client-certificate': 'pki/client.crt', 'client-key': keyFile },
    });
    const access = loadFile(path.relative(process.cwd(), file));
    expect(access.ca?.toString()).toBe(CA);
    expect(access.insecure).toBe(true);
    expect(access.servername).toBeUndefined();
    expect(access.namespace).toBe('default');
    const creds = await access.credentials();
    expect(creds.cert?.toString()).toBe(CERT);
    expect(creds.key?.toString()).toBe(KEY);
  });

  it('without CA fields leaves ca undefined (system CAs)', () => {
    expect(loadFile(kubeconfig('config')).ca).toBeUndefined();
  });

  it('prefers -data over the file when both are set', () => {
    const file = kubeconfig('config', {
      cluster: { 'certificate-authority-data': b64(CA), 'certificate-authority': 'missing.crt' },
    });
    expect(loadFile(file).ca?.toString()).toBe(CA);
  });

  it('rejects -data that is not base64 PEM, and a missing CA file, naming the cluster and path', () => {
    const pasted = kubeconfig('a', { cluster: { 'certificate-authority-data': CA } });
    expect(() => loadFile(pasted)).toThrow(
      /cluster "c" in kubeconfig .*certificate-authority-data is not base64/,
    );
    const missing = kubeconfig('b', { cluster: { 'certificate-authority': 'nope/ca.crt' } });
    expect(() => loadFile(missing)).toThrow(
      new RegExp(`cluster "c".*cannot read certificate-authority ${path.join(dir, 'nope/ca.crt')}.*Fix`),
    );
  });

  it('rejects a client certificate without a key', () => {
    const file = kubeconfig('config', { user: { 'client-certificate-data': b64(CERT) } });
    expect(() => loadFile(file)).toThrow(/user "u" .*client certificate but no key/);
  });

  it('rejects a cluster without server and a non-http(s) server', () => {
    expect(() => loadFile(kubeconfig('a', { cluster: { server: null } }))).toThrow(
      /cluster "c" .*has no server/,
    );
    expect(() => loadFile(kubeconfig('b', { cluster: { server: 'ftp://x' } }))).toThrow(/must be an https/);
  });

  it('reports unreadable and malformed files', () => {
    expect(() => loadFile(path.join(dir, 'absent'))).toThrow(/cannot read kubeconfig .*absent.*Fix/);
    expect(() => loadFile(write('bad', 'clusters: [\n'))).toThrow(/is not valid YAML/);
  });
});

describe('loadFile: contexts', () => {
  const twoContexts = () =>
    write(
      'config',
      stringify({
        clusters: [
          { name: 'one', cluster: { server: 'https://one:6443' } },
          { name: 'two', cluster: { server: 'https://two:6443' } },
        ],
        users: [{ name: 'u', user: { token: 't' } }],
        contexts: [
          { name: 'a', context: { cluster: 'one', user: 'u' } },
          { name: 'b', context: { cluster: 'two', user: 'u', namespace: 'ns-b' } },
        ],
        'current-context': 'a',
      }),
    );

  it('uses current-context by default and the given context when asked', () => {
    const file = twoContexts();
    expect(loadFile(file).server).toBe('https://one:6443');
    const b = loadFile(file, { context: 'b' });
    expect(b.server).toBe('https://two:6443');
    expect(b.namespace).toBe('ns-b');
    expect(b.source).toBe(`kubeconfig ${file}, context b`);
  });

  it('names a context that is not defined, and lists the defined ones', () => {
    expect(() => loadFile(twoContexts(), { context: 'nope' })).toThrow(
      /context "nope" is not defined in kubeconfig .*config \(defined contexts: "a", "b"\).*Fix/,
    );
    const file = kubeconfig('other', { currentContext: 'gone' });
    expect(() => loadFile(file)).toThrow(/context "gone" \(current-context of .*other\) is not defined/);
  });

  it('needs a current-context or a context', () => {
    expect(() => loadFile(kubeconfig('config', { currentContext: null }))).toThrow(
      /has no current-context and no context was given.*use-context/,
    );
  });

  it('names an undefined cluster or user', () => {
    const noCluster = kubeconfig('a', { context: { cluster: 'ghost' } });
    expect(() => loadFile(noCluster)).toThrow(
      new RegExp(`cluster "ghost" named by context "ctx" in kubeconfig ${noCluster} is not defined`),
    );
    const noUser = kubeconfig('b', { context: { user: 'nobody' } });
    expect(() => loadFile(noUser)).toThrow(/user "nobody" named by context "ctx" .* is not defined/);
  });

  it('a context without a user sends no credentials', async () => {
    const access = loadFile(kubeconfig('config', { context: { user: null } }));
    expect(await access.credentials()).toEqual({});
  });
});

describe('loadFile: unsupported features', () => {
  it('auth-provider: names the user and points to exec plugins', () => {
    const file = kubeconfig('config', {
      user: { token: null, 'auth-provider': { name: 'oidc', config: { 'id-token': 'x' } } },
    });
    expect(() => loadFile(file)).toThrow(
      /user "u" in kubeconfig .*auth-provider "oidc".*exec credential plugin/,
    );
    expect(() => loadFile(file)).toThrow(/kubelogin.*gke-gcloud-auth-plugin/);
  });

  it('proxy-url: names the cluster and says to run where the API server is reachable', () => {
    const file = kubeconfig('config', { cluster: { 'proxy-url': 'http://proxy:3128' } });
    expect(() => loadFile(file)).toThrow(
      /cluster "c" in kubeconfig .*proxy-url.*not supported by snapcron's client/,
    );
    expect(() => loadFile(file)).toThrow(/reachable directly/);
  });

  it('impersonation', () => {
    const file = kubeconfig('config', { user: { as: 'admin', 'as-groups': ['system:masters'] } });
    expect(() => loadFile(file)).toThrow(/user "u" .*sets as, as-groups \(impersonation\)/);
  });

  it('two authentication methods at once', () => {
    const file = kubeconfig('config', { user: { token: 't', username: 'x', password: 'y' } });
    expect(() => loadFile(file)).toThrow(/more than one way to authenticate \(token, username\/password\)/);
  });

  it('an exec apiVersion other than v1/v1beta1', () => {
    const file = kubeconfig('config', {
      user: { token: null, exec: { command: 'x', apiVersion: 'client.authentication.k8s.io/v1alpha1' } },
    });
    expect(() => loadFile(file)).toThrow(
      /exec: apiVersion "client.authentication.k8s.io\/v1alpha1" is not supported/,
    );
  });
});

describe('loadFile: static credentials', () => {
  it('token gives a bearer header', async () => {
    const access = loadFile(kubeconfig('config', { user: { token: 'abc' } }));
    expect(await access.credentials()).toEqual({ authorization: 'Bearer abc' });
  });

  it('username/password give basic auth', async () => {
    const access = loadFile(
      kubeconfig('config', { user: { token: null, username: 'admin', password: 's3cr:t' } }),
    );
    expect(await access.credentials()).toEqual({ authorization: basic('admin', 's3cr:t') });
  });

  it('tokenFile (relative) is re-read only when older than 60 s, or after invalidate()', async () => {
    write('kube/token', 'first\n');
    const c = clock();
    const access = loadFile(kubeconfig('kube/config', { user: { token: null, tokenFile: 'token' } }), {
      now: c.now,
    });
    expect(await access.credentials()).toEqual({ authorization: 'Bearer first' });
    write('kube/token', 'second');
    c.advance(60_000);
    expect((await access.credentials()).authorization).toBe('Bearer first');
    c.advance(1);
    expect((await access.credentials()).authorization).toBe('Bearer second');
    write('kube/token', 'third');
    expect((await access.credentials()).authorization).toBe('Bearer second');
    access.invalidate();
    expect((await access.credentials()).authorization).toBe('Bearer third');
  });

  it('tokenFile keeps the last good token when a re-read fails', async () => {
    const token = write('token', 'good');
    const c = clock();
    const access = loadFile(kubeconfig('config', { user: { token: null, tokenFile: token } }), {
      now: c.now,
    });
    rmSync(token);
    c.advance(61_000);
    expect((await access.credentials()).authorization).toBe('Bearer good');
    write('token', 'rotated');
    expect((await access.credentials()).authorization).toBe('Bearer rotated');
  });

  it('a missing or empty tokenFile fails at load', () => {
    expect(() => loadFile(kubeconfig('a', { user: { token: null, tokenFile: 'absent' } }))).toThrow(
      /user "u" .*cannot read token file .*absent/,
    );
    write('empty', '\n');
    expect(() => loadFile(kubeconfig('b', { user: { token: null, tokenFile: 'empty' } }))).toThrow(
      /is empty/,
    );
  });
});

describe('loadFile: exec plugins', () => {
  const V1 = 'client.authentication.k8s.io/v1';
  const V1BETA1 = 'client.authentication.k8s.io/v1beta1';

  it('v1 token: passes args and env, caches until expirationTimestamp, re-runs after, and after invalidate()', async () => {
    const c = clock();
    const expiry = new Date(c.now() + 10 * 60_000).toISOString();
    const p = plugin(
      'get-token',
      `printf '%s' '{"apiVersion":"${V1}","kind":"ExecCredential","status":{"token":"'"$1-$GREETING-$n"'","expirationTimestamp":"${expiry}"}}'`,
    );
    const access = loadFile(
      kubeconfig('config', {
        user: {
          token: null,
          exec: {
            apiVersion: V1,
            command: p.command,
            args: ['arg'],
            env: [{ name: 'GREETING', value: 'hi' }],
            interactiveMode: 'IfAvailable',
          },
        },
      }),
      { now: c.now },
    );
    expect(p.runs()).toBe(0); // nothing runs at load time
    expect(await access.credentials()).toEqual({ authorization: 'Bearer arg-hi-1' });
    c.advance(9 * 60_000);
    expect((await access.credentials()).authorization).toBe('Bearer arg-hi-1');
    expect(p.runs()).toBe(1);
    c.advance(60_000); // now == expiry
    expect((await access.credentials()).authorization).toBe('Bearer arg-hi-2');
    access.invalidate();
    expect((await access.credentials()).authorization).toBe('Bearer arg-hi-3');
    expect(p.runs()).toBe(3);
  });

  it('concurrent callers share one run', async () => {
    const p = plugin('slow', `sleep 0.2; printf '%s' '${execCredential(V1, { token: 'shared' })}'`);
    const access = loadFile(
      kubeconfig('config', { user: { token: null, exec: { apiVersion: V1, command: p.command } } }),
    );
    const all = await Promise.all([access.credentials(), access.credentials(), access.credentials()]);
    expect(all.map((x) => x.authorization)).toEqual(['Bearer shared', 'Bearer shared', 'Bearer shared']);
    expect(p.runs()).toBe(1);
  });

  it('a run in flight during invalidate() does not refill the cache', async () => {
    const p = plugin(
      'inflight',
      `sleep 0.2; printf '%s' '{"apiVersion":"${V1}","kind":"ExecCredential","status":{"token":"run-'$n'"}}'`,
    );
    const access = loadFile(
      kubeconfig('config', { user: { token: null, exec: { apiVersion: V1, command: p.command } } }),
    );
    const before = access.credentials();
    access.invalidate();
    expect((await before).authorization).toBe('Bearer run-1');
    expect((await access.credentials()).authorization).toBe('Bearer run-2');
    expect(p.runs()).toBe(2);
  });

  it('v1beta1 client cert/key without expiry is cached for good; a relative command resolves against the kubeconfig', async () => {
    const c = clock();
    const p = plugin(
      'bin/cert-plugin',
      `printf '%s' '${execCredential(V1BETA1, { clientCertificateData: CERT, clientKeyData: KEY })}'`,
    );
    const access = loadFile(
      kubeconfig('config', {
        user: { token: null, exec: { apiVersion: V1BETA1, command: './bin/cert-plugin' } },
      }),
      { now: c.now },
    );
    const creds = await access.credentials();
    expect(creds.cert?.toString()).toBe(CERT);
    expect(creds.key?.toString()).toBe(KEY);
    expect(creds.authorization).toBeUndefined();
    c.advance(365 * 24 * 3600_000);
    await access.credentials();
    expect(p.runs()).toBe(1);
  });

  it('the exec certificate replaces a static one', async () => {
    const p = plugin(
      'cert',
      `printf '%s' '${execCredential(V1, { clientCertificateData: 'EXEC', clientKeyData: 'EK' })}'`,
    );
    const access = loadFile(
      kubeconfig('config', {
        user: {
          token: null,
          'client-certificate-data': b64(CERT),
          'client-key-data': b64(KEY),
          exec: { apiVersion: V1, command: p.command },
        },
      }),
    );
    const creds = await access.credentials();
    expect(creds.cert?.toString()).toBe('EXEC');
    expect(creds.key?.toString()).toBe('EK');
  });

  it('provideClusterInfo puts the cluster in KUBERNETES_EXEC_INFO; without it only spec.interactive', async () => {
    const infoFile = path.join(dir, 'info.json');
    const p = plugin(
      'info',
      `printf '%s' "$KUBERNETES_EXEC_INFO" > '${infoFile}'.$n; printf '%s' '${execCredential(V1, { token: 't' })}'`,
    );
    const user = (provideClusterInfo: boolean) => ({
      token: null,
      exec: { apiVersion: V1, command: p.command, provideClusterInfo },
    });
    const cluster = {
      'certificate-authority-data': b64(CA),
      'tls-server-name': 'api.internal',
      extensions: [{ name: 'client.authentication.k8s.io/exec', extension: { audience: 'x' } }],
    };
    await loadFile(kubeconfig('a', { cluster, user: user(true) })).credentials();
    await loadFile(kubeconfig('b', { cluster, user: user(false) })).credentials();
    expect(JSON.parse(readFileSync(`${infoFile}.1`, 'utf8'))).toEqual({
      apiVersion: V1,
      kind: 'ExecCredential',
      spec: {
        interactive: false,
        cluster: {
          server: 'https://10.0.0.1:6443',
          'tls-server-name': 'api.internal',
          'certificate-authority-data': b64(CA),
          config: { audience: 'x' },
        },
      },
    });
    expect(JSON.parse(readFileSync(`${infoFile}.2`, 'utf8'))).toEqual({
      apiVersion: V1,
      kind: 'ExecCredential',
      spec: { interactive: false },
    });
  });

  it('a failing plugin: error names the command, exit code, stderr and the fix; the failure is not cached', async () => {
    const p = plugin(
      'login',
      `if [ "$n" = 1 ]; then echo 'token expired, run login' >&2; exit 3; fi
printf '%s' '${execCredential(V1, { token: 'ok' })}'`,
    );
    const access = loadFile(
      kubeconfig('config', {
        user: { token: null, exec: { apiVersion: V1, command: p.command, args: ['--x', 'a b'] } },
      }),
    );
    const err = await access.credentials().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toContain(`exec credential plugin "${p.command} --x 'a b'" of user "u"`);
    expect(msg).toContain('exit code 3');
    expect(msg).toContain('stderr: token expired, run login');
    expect(msg).toContain('Fix: run the command by hand');
    expect(await access.credentials()).toEqual({ authorization: 'Bearer ok' });
  });

  it('a missing command suggests the installHint', async () => {
    const access = loadFile(
      kubeconfig('config', {
        user: {
          token: null,
          exec: {
            apiVersion: V1,
            command: 'snapcron-no-such-plugin',
            installHint: 'brew install the-plugin',
          },
        },
      }),
    );
    await expect(access.credentials()).rejects.toThrow(
      /"snapcron-no-such-plugin" of user "u".*command not found\. Fix: brew install the-plugin/,
    );
  });

  it('rejects bad plugin output', async () => {
    const cases: [string, RegExp][] = [
      ['echo not json', /printed no JSON/],
      [
        `printf '%s' '${execCredential(V1BETA1, { token: 't' })}'`,
        /apiVersion .*v1beta1.* but the kubeconfig asks for .*\/v1/,
      ],
      [`printf '%s' '${execCredential(V1, {})}'`, /neither status.token nor/],
      [`printf '%s' '${execCredential(V1, { clientCertificateData: 'C' })}'`, /only one of/],
      [
        `printf '%s' '${execCredential(V1, { token: 't', expirationTimestamp: 'soon' })}'`,
        /not an RFC 3339 time/,
      ],
    ];
    for (const [i, [body, re]] of cases.entries()) {
      const p = plugin(`bad${i}`, body);
      const access = loadFile(
        kubeconfig(`c${i}`, { user: { token: null, exec: { apiVersion: V1, command: p.command } } }),
      );
      await expect(access.credentials()).rejects.toThrow(re);
    }
  });
});

describe('loadInCluster', () => {
  const serviceAccount = (files: Record<string, string>) => {
    for (const [name, content] of Object.entries(files)) write(`sa/${name}`, content);
    return path.join(dir, 'sa');
  };

  it('reads host, port, ca.crt, namespace and token; re-reads the token after 60 s', async () => {
    const inClusterDir = serviceAccount({ token: 'sa-1\n', 'ca.crt': CA, namespace: 'snapcron-system\n' });
    const c = clock();
    const access = loadInCluster({
      env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
      inClusterDir,
      now: c.now,
    });
    expect(access.server).toBe('https://10.96.0.1:443');
    expect(access.namespace).toBe('snapcron-system');
    expect(access.ca?.toString()).toBe(CA);
    expect(access.insecure).toBe(false);
    expect(access.source).toBe('in-cluster service account');
    expect(await access.credentials()).toEqual({ authorization: 'Bearer sa-1' });
    write('sa/token', 'sa-2');
    c.advance(30_000);
    expect((await access.credentials()).authorization).toBe('Bearer sa-1');
    c.advance(31_000);
    expect((await access.credentials()).authorization).toBe('Bearer sa-2');
  });

  it('brackets an IPv6 host; without namespace and ca.crt: default namespace, system CAs', () => {
    const inClusterDir = serviceAccount({ token: 't' });
    const access = loadInCluster({
      env: { KUBERNETES_SERVICE_HOST: 'fd00:10:96::1', KUBERNETES_SERVICE_PORT: '6443' },
      inClusterDir,
    });
    expect(access.server).toBe('https://[fd00:10:96::1]:6443');
    expect(access.namespace).toBe('default');
    expect(access.ca).toBeUndefined();
  });

  it('needs the env variables and the token', () => {
    expect(() => loadInCluster({ env: { KUBERNETES_SERVICE_HOST: 'h' }, inClusterDir: dir })).toThrow(
      /KUBERNETES_SERVICE_PORT is not set.*Fix/,
    );
    expect(() =>
      loadInCluster({
        env: { KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '443' },
        inClusterDir: dir,
      }),
    ).toThrow(/cannot read token file .*automountServiceAccountToken/);
  });
});

describe('loadDefault', () => {
  const inClusterEnv = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
  let home: string;
  let inClusterDir: string;
  beforeEach(() => {
    home = path.join(dir, 'home');
    mkdirSync(home);
    inClusterDir = path.join(dir, 'sa');
    write('sa/token', 'sa-token');
  });
  const homeConfig = () => kubeconfig('home/.kube/config', { cluster: { server: 'https://home:6443' } });

  it('merges $KUBECONFIG files: the first to set a name or current-context wins; missing files are skipped', async () => {
    const a = write(
      'a/config',
      stringify({
        clusters: [{ name: 'shared', cluster: { server: 'https://from-a:6443' } }],
        users: [{ name: 'ua', user: { token: 'token-a' } }],
        contexts: [{ name: 'ctx-a', context: { cluster: 'shared', user: 'ua' } }],
      }),
    );
    write('b/token', 'token-b');
    const b = write(
      'b/config',
      stringify({
        clusters: [
          { name: 'shared', cluster: { server: 'https://from-b:6443' } },
          { name: 'only-b', cluster: { server: 'https://only-b:6443' } },
        ],
        users: [
          { name: 'ua', user: { token: 'shadowed' } },
          { name: 'ub', user: { tokenFile: 'token' } },
        ],
        contexts: [
          { name: 'ctx-a', context: { cluster: 'only-b', user: 'ub' } },
          { name: 'ctx-b', context: { cluster: 'shared', user: 'ub', namespace: 'nb' } },
        ],
        'current-context': 'ctx-b',
      }),
    );
    const c = write('c/config', stringify({ 'current-context': 'ctx-a' }));
    homeConfig();
    const env = { KUBECONFIG: [path.join(dir, 'missing'), a, b, c].join(':'), ...inClusterEnv };

    // a sets no current-context, so b's wins over c's.
    const current = loadDefault({ env, home, inClusterDir });
    expect(current.server).toBe('https://from-a:6443');
    expect(current.namespace).toBe('nb');
    expect(current.source).toBe(`kubeconfigs ${[a, b, c].join(':')}, context ctx-b`);
    // b's tokenFile is relative to b's directory.
    expect(await current.credentials()).toEqual({ authorization: 'Bearer token-b' });

    const ctxA = loadDefault({ env, home, inClusterDir, context: 'ctx-a' });
    expect(ctxA.server).toBe('https://from-a:6443');
    expect(await ctxA.credentials()).toEqual({ authorization: 'Bearer token-a' });
  });

  it('$KUBECONFIG naming no existing file is an error, not a fallback', () => {
    homeConfig();
    expect(() =>
      loadDefault({ env: { KUBECONFIG: path.join(dir, 'none'), ...inClusterEnv }, home, inClusterDir }),
    ).toThrow(/\$KUBECONFIG is set to .* but none of its files exist.*Fix/);
  });

  it('then ~/.kube/config, with context override', () => {
    const file = homeConfig();
    const access = loadDefault({ env: { ...inClusterEnv }, home, inClusterDir });
    expect(access.server).toBe('https://home:6443');
    expect(access.source).toBe(`kubeconfig ${file}, context ctx`);
    expect(() => loadDefault({ env: {}, home, context: 'other' })).toThrow(/context "other" is not defined/);
  });

  it('then the in-cluster service account', async () => {
    const access = loadDefault({ env: { ...inClusterEnv }, home, inClusterDir });
    expect(access.source).toBe('in-cluster service account');
    expect(access.server).toBe('https://10.96.0.1:443');
    expect(await access.credentials()).toEqual({ authorization: 'Bearer sa-token' });
    expect(() => loadDefault({ env: { ...inClusterEnv }, home, inClusterDir, context: 'x' })).toThrow(
      /context "x" was asked for, but there is no kubeconfig/,
    );
  });

  it('else an error saying what was looked for and how to fix it', () => {
    expect(() => loadDefault({ env: {}, home, inClusterDir })).toThrow(
      new RegExp(
        `no Kubernetes configuration found: \\$KUBECONFIG is not set, ${path.join(home, '.kube', 'config')} does not exist, and KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set.*Fix: set KUBECONFIG`,
      ),
    );
  });
});

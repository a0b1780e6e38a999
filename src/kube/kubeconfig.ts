/**
 * Where the API server is and how to authenticate to it: kubeconfig files ($KUBECONFIG,
 * ~/.kube/config) and the pod's service account, as kubectl finds them. Our own loader so the
 * controller need not import @kubernetes/client-node (~90 MiB RSS) just to read its config.
 *
 * Everything that can be checked is checked at load time, so a bad kubeconfig fails at startup
 * with a message naming the object and the fix, not on the first request.
 */
import { execFile, type ExecFileException } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import path from 'node:path';
import { yaml } from '../yaml.ts';

export interface ClusterAccess {
  /** API server URL without trailing slash, e.g. https://10.0.0.1:6443 */
  server: string;
  /** The context's namespace, else (in-cluster) the service account namespace file, else 'default'. */
  namespace: string;
  /** Where it came from, for error messages: e.g. 'kubeconfig /root/.kube/config, context kind-x' or 'in-cluster service account'. */
  source: string;
  /** PEM CA bundle (from certificate-authority-data base64 or certificate-authority file, paths relative to the kubeconfig file's directory), undefined = system CAs. */
  ca?: Buffer;
  /** insecure-skip-tls-verify */
  insecure: boolean;
  /** tls-server-name */
  servername?: string;
  /** The credentials to send now. Static client certs come from client-certificate(-data)/client-key(-data).
   *  token / tokenFile give authorization 'Bearer …' (a tokenFile is re-read when older than 60 s, as in-cluster projected tokens rotate);
   *  username/password give 'Basic …'; an exec plugin (client.authentication.k8s.io/v1 and v1beta1; env, args, apiVersion, provideClusterInfo -> KUBERNETES_EXEC_INFO; interactiveMode ignored, stdin not a TTY) gives a token or a client cert/key; its credential is cached until status.expirationTimestamp (or forever if none) and until invalidate(). The exec runs asynchronously (child_process.execFile, not execFileSync) with a 60 s timeout; its failure is an Error naming the command, the exit code and its stderr, and the fix. */
  credentials(): Promise<{ authorization?: string; cert?: Buffer; key?: Buffer }>;
  /** After a 401 answer: forget cached exec credentials and re-read token files on the next credentials(). */
  invalidate(): void;
}

type Credentials = { authorization?: string; cert?: Buffer; key?: Buffer };
type Clock = () => number;
type Obj = Record<string, unknown>;

const DEFAULT_IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
// client-go's cachingTokenSource refreshes file tokens every minute; kubelet rotates projected
// tokens well before they expire, so a minute-old token is still valid.
const TOKEN_FILE_MAX_AGE_MS = 60_000;
const EXEC_TIMEOUT_MS = 60_000;
const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'];
const EXEC_CLUSTER_EXTENSION = 'client.authentication.k8s.io/exec';
const IMPERSONATION_KEYS = ['as', 'as-uid', 'as-groups', 'as-user-extra'];

// ---------------------------------------------------------------------------------------------
// Public loaders
// ---------------------------------------------------------------------------------------------

/** As kubectl and client-node's loadFromDefault: $KUBECONFIG (paths joined by ':', the first file that sets a key wins when merging clusters/users/contexts by name and current-context), else ~/.kube/config if it exists, else in-cluster (KUBERNETES_SERVICE_HOST/PORT set), else an Error that says what was looked for and how to fix it. */
export function loadDefault(
  opts: { context?: string; env?: NodeJS.ProcessEnv; home?: string; inClusterDir?: string; now?: Clock } = {},
): ClusterAccess {
  const env = opts.env ?? process.env;
  const now = opts.now ?? Date.now;
  const list = env.KUBECONFIG;
  if (list) {
    const files = list
      .split(path.delimiter)
      .filter((f) => f !== '')
      .map((f) => path.resolve(f));
    // As kubectl: files in $KUBECONFIG that do not exist are skipped.
    const existing = files.filter((f) => existsSync(f));
    if (existing.length === 0) {
      throw new Error(
        `$KUBECONFIG is set to ${JSON.stringify(list)} but none of its files exist (${files.join(', ')}). ` +
          'Fix: point KUBECONFIG at an existing kubeconfig file, or unset it to use ~/.kube/config or the in-cluster service account.',
      );
    }
    return fromKubeconfig(merge(existing.map(readKubeconfigFile)), opts.context, now);
  }
  const home = opts.home ?? env.HOME ?? homedir();
  const homeConfig = path.join(home, '.kube', 'config');
  if (existsSync(homeConfig)) return fromKubeconfig(readKubeconfigFile(homeConfig), opts.context, now);
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT) {
    if (opts.context !== undefined) {
      throw new Error(
        `context "${opts.context}" was asked for, but there is no kubeconfig ($KUBECONFIG is not set and ${homeConfig} does not exist), ` +
          'only the in-cluster service account, which has no contexts. Fix: set KUBECONFIG to the kubeconfig that defines the context, or drop the context option.',
      );
    }
    return loadInCluster({
      env,
      now,
      ...(opts.inClusterDir !== undefined ? { inClusterDir: opts.inClusterDir } : {}),
    });
  }
  throw new Error(
    `no Kubernetes configuration found: $KUBECONFIG is not set, ${homeConfig} does not exist, and ` +
      'KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set (not running in a pod). ' +
      'Fix: set KUBECONFIG to a kubeconfig file (e.g. from "kind export kubeconfig" or your cloud CLI), ' +
      `create ${homeConfig}, or run in a pod with a service account.`,
  );
}

/** One kubeconfig file (relative paths inside it resolve against its directory); context defaults to current-context. */
export function loadFile(file: string, opts: { context?: string; now?: Clock } = {}): ClusterAccess {
  return fromKubeconfig(readKubeconfigFile(path.resolve(file)), opts.context, opts.now ?? Date.now);
}

/** The pod's service account: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (IPv6 host bracketed), ca.crt, token (re-read when older than 60 s), namespace, from inClusterDir (default /var/run/secrets/kubernetes.io/serviceaccount). */
export function loadInCluster(
  opts: { env?: NodeJS.ProcessEnv; inClusterDir?: string; now?: Clock } = {},
): ClusterAccess {
  const env = opts.env ?? process.env;
  const dir = opts.inClusterDir ?? DEFAULT_IN_CLUSTER_DIR;
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new Error(
      'in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, which Kubernetes sets in every pod, ' +
        `but ${!host ? 'KUBERNETES_SERVICE_HOST' : 'KUBERNETES_SERVICE_PORT'} is not set. ` +
        'Fix: run inside a pod, or use a kubeconfig (KUBECONFIG or ~/.kube/config).',
    );
  }
  const tokenFile = new TokenFile(
    path.join(dir, 'token'),
    'the in-cluster service account',
    'mount a service account token in the pod (automountServiceAccountToken: true on the pod or its ServiceAccount)',
    opts.now ?? Date.now,
  );
  // As client-go: without ca.crt, fall back to the system CAs rather than fail.
  const ca = readOptional(path.join(dir, 'ca.crt'));
  const namespace = readOptional(path.join(dir, 'namespace'))?.toString('utf8').trim();
  return makeAccess({
    server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`,
    namespace: namespace || 'default',
    source: 'in-cluster service account',
    ca,
    insecure: false,
    servername: undefined,
    auth: { tokenFile },
  });
}

// ---------------------------------------------------------------------------------------------
// Kubeconfig files
// ---------------------------------------------------------------------------------------------

/** A named cluster, user or context, with the file it came from (relative paths resolve against it). */
interface Entry {
  name: string;
  body: Obj;
  file: string;
}

interface Kubeconfig {
  files: string[];
  currentContext?: { name: string; file: string };
  clusters: Map<string, Entry>;
  users: Map<string, Entry>;
  contexts: Map<string, Entry>;
}

function jsonOrUndefined(text: string): unknown {
  if (!text.trimStart().startsWith('{')) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function readKubeconfigFile(file: string): Kubeconfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot read kubeconfig ${file}: ${errText(err)}. Fix: check the path (KUBECONFIG, --kubeconfig) and its permissions.`,
      { cause: err },
    );
  }
  let doc: unknown;
  try {
    // JSON is YAML too; JSON.parse first spares loading the YAML library for a JSON kubeconfig.
    doc = jsonOrUndefined(text) ?? yaml().parse(text);
  } catch (err) {
    throw new Error(
      `kubeconfig ${file} is not valid YAML: ${errText(err)}. Fix: repair the file, or regenerate it (e.g. "kind export kubeconfig").`,
      { cause: err },
    );
  }
  const config: Kubeconfig = { files: [file], clusters: new Map(), users: new Map(), contexts: new Map() };
  // An empty file is an empty config, as kubectl treats it.
  if (doc === null || doc === undefined) return config;
  if (!isObj(doc)) {
    throw new Error(`kubeconfig ${file} is not a YAML mapping. Fix: it must be a kind: Config document.`);
  }
  const current = doc['current-context'];
  if (typeof current === 'string' && current !== '') config.currentContext = { name: current, file };
  readList(doc, 'clusters', 'cluster', file, config.clusters);
  readList(doc, 'users', 'user', file, config.users);
  readList(doc, 'contexts', 'context', file, config.contexts);
  return config;
}

function readList(doc: Obj, key: string, inner: string, file: string, into: Map<string, Entry>): void {
  const list = doc[key];
  if (list === undefined || list === null) return;
  if (!Array.isArray(list)) {
    throw new Error(
      `kubeconfig ${file}: ${key} must be a list. Fix: write it as "${key}: [{name: ..., ${inner}: {...}}]".`,
    );
  }
  list.forEach((item: unknown, i) => {
    if (!isObj(item) || typeof item.name !== 'string' || item.name === '') {
      throw new Error(
        `kubeconfig ${file}: ${key}[${i}] has no name. Fix: give every entry of ${key} a name.`,
      );
    }
    const body = item[inner] ?? {};
    if (!isObj(body)) {
      throw new Error(`kubeconfig ${file}: ${inner} "${item.name}" must be a mapping under "${inner}:".`);
    }
    // Within one file as across files: the first definition wins.
    if (!into.has(item.name)) into.set(item.name, { name: item.name, body, file });
  });
}

/** kubectl's merge of $KUBECONFIG files: the first file to set a name (or current-context) wins. */
function merge(configs: Kubeconfig[]): Kubeconfig {
  const out: Kubeconfig = { files: [], clusters: new Map(), users: new Map(), contexts: new Map() };
  for (const c of configs) {
    out.files.push(...c.files);
    out.currentContext ??= c.currentContext;
    for (const kind of ['clusters', 'users', 'contexts'] as const) {
      for (const [name, entry] of c[kind]) if (!out[kind].has(name)) out[kind].set(name, entry);
    }
  }
  return out;
}

function fromKubeconfig(config: Kubeconfig, contextOverride: string | undefined, now: Clock): ClusterAccess {
  const where =
    config.files.length === 1
      ? `kubeconfig ${config.files[0]}`
      : `kubeconfigs ${config.files.join(path.delimiter)}`;
  const defined = (m: Map<string, Entry>) =>
    m.size ? [...m.keys()].map((k) => `"${k}"`).join(', ') : 'none';

  const contextName = contextOverride ?? config.currentContext?.name;
  if (contextName === undefined || contextName === '') {
    throw new Error(
      `${where} has no current-context and no context was given (defined contexts: ${defined(config.contexts)}). ` +
        'Fix: run "kubectl config use-context <name>" or pass a context.',
    );
  }
  const context = config.contexts.get(contextName);
  if (!context) {
    const by =
      contextOverride === undefined ? ` (current-context of ${config.currentContext?.file ?? where})` : '';
    throw new Error(
      `context "${contextName}"${by} is not defined in ${where} (defined contexts: ${defined(config.contexts)}). ` +
        'Fix: pick a defined context, or add it to the kubeconfig.',
    );
  }
  const ctxWhat = `context "${context.name}" in kubeconfig ${context.file}`;
  const clusterName = optString(context.body, 'cluster', ctxWhat);
  if (clusterName === undefined) {
    throw new Error(`${ctxWhat} names no cluster. Fix: set contexts[].context.cluster to a defined cluster.`);
  }
  const cluster = config.clusters.get(clusterName);
  if (!cluster) {
    throw new Error(
      `cluster "${clusterName}" named by ${ctxWhat} is not defined in ${where} (defined clusters: ${defined(config.clusters)}). ` +
        'Fix: add the cluster to the kubeconfig, or point the context at a defined one.',
    );
  }
  const userName = optString(context.body, 'user', ctxWhat);
  const user = userName === undefined ? undefined : config.users.get(userName);
  if (userName !== undefined && !user) {
    throw new Error(
      `user "${userName}" named by ${ctxWhat} is not defined in ${where} (defined users: ${defined(config.users)}). ` +
        'Fix: add the user to the kubeconfig, or point the context at a defined one.',
    );
  }

  const c = readCluster(cluster);
  return makeAccess({
    ...c,
    namespace: optString(context.body, 'namespace', ctxWhat) ?? 'default',
    source: `${where}, context ${context.name}`,
    auth: user ? readUser(user, c, now) : {},
  });
}

interface ClusterSettings {
  server: string;
  ca: Buffer | undefined;
  insecure: boolean;
  servername: string | undefined;
  /** The cluster part of KUBERNETES_EXEC_INFO, for plugins with provideClusterInfo. */
  execInfo: Obj;
}

function readCluster(entry: Entry): ClusterSettings {
  const what = `cluster "${entry.name}" in kubeconfig ${entry.file}`;
  const b = entry.body;
  if (optString(b, 'proxy-url', what) !== undefined) {
    throw new Error(
      `${what} sets proxy-url, which is not supported by snapcron's client. ` +
        'Fix: run snapcron where the API server is reachable directly, and remove proxy-url.',
    );
  }
  const raw = optString(b, 'server', what);
  if (raw === undefined) {
    throw new Error(`${what} has no server. Fix: set clusters[].cluster.server, e.g. https://10.0.0.1:6443.`);
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(
      `${what}: server "${raw}" is not a URL. Fix: set it to the API server URL, e.g. https://10.0.0.1:6443.`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new Error(`${what}: server "${raw}" must be an https:// (or http://) URL.`);
  }
  const server = raw.replace(/\/+$/, '');
  const dir = path.dirname(entry.file);
  const ca = pem(b, 'certificate-authority-data', 'certificate-authority', dir, what);
  const insecure = optBool(b, 'insecure-skip-tls-verify', what);
  const servername = optString(b, 'tls-server-name', what);

  const execInfo: Obj = { server };
  if (servername !== undefined) execInfo['tls-server-name'] = servername;
  if (insecure) execInfo['insecure-skip-tls-verify'] = true;
  if (ca) execInfo['certificate-authority-data'] = ca.toString('base64');
  if (b['disable-compression'] === true) execInfo['disable-compression'] = true;
  const extensions = b.extensions;
  if (Array.isArray(extensions)) {
    const ext: unknown = extensions.find((e) => isObj(e) && e.name === EXEC_CLUSTER_EXTENSION);
    if (isObj(ext) && ext.extension !== undefined) execInfo.config = ext.extension;
  }
  return { server, ca, insecure, servername, execInfo };
}

interface Auth {
  cert?: Buffer;
  key?: Buffer;
  basic?: string;
  token?: string;
  tokenFile?: TokenFile;
  exec?: ExecPlugin;
}

function readUser(entry: Entry, cluster: ClusterSettings, now: Clock): Auth {
  const what = `user "${entry.name}" in kubeconfig ${entry.file}`;
  const b = entry.body;
  const dir = path.dirname(entry.file);
  if (b['auth-provider'] !== undefined && b['auth-provider'] !== null) {
    const name = isObj(b['auth-provider']) ? b['auth-provider'].name : undefined;
    throw new Error(
      `${what} uses auth-provider${typeof name === 'string' ? ` "${name}"` : ''}, which snapcron's client does not support ` +
        '(kubectl dropped the built-in providers too). Fix: use an exec credential plugin instead, ' +
        'e.g. kubelogin (Azure/OIDC) or gke-gcloud-auth-plugin (GKE).',
    );
  }
  const impersonation = IMPERSONATION_KEYS.filter((k) => b[k] !== undefined && b[k] !== null);
  if (impersonation.length > 0) {
    throw new Error(
      `${what} sets ${impersonation.join(', ')} (impersonation), which snapcron's client does not support. ` +
        'Fix: use credentials of the identity itself (e.g. its ServiceAccount token) and remove the impersonation keys.',
    );
  }

  const auth: Auth = {};
  const cert = pem(b, 'client-certificate-data', 'client-certificate', dir, what);
  const key = pem(b, 'client-key-data', 'client-key', dir, what);
  if ((cert === undefined) !== (key === undefined)) {
    throw new Error(
      `${what} has a client ${cert ? 'certificate but no key' : 'key but no certificate'}. ` +
        'Fix: set both client-certificate(-data) and client-key(-data), or neither.',
    );
  }
  if (cert && key) Object.assign(auth, { cert, key });

  const methods: string[] = [];
  const token = optString(b, 'token', what);
  if (token !== undefined) {
    methods.push('token');
    auth.token = token;
  }
  // kubeconfig spells it tokenFile; client-node also read token-file.
  const tokenFileKey = b.tokenFile !== undefined ? 'tokenFile' : 'token-file';
  const tokenFile = optString(b, tokenFileKey, what);
  if (tokenFile !== undefined) {
    methods.push(tokenFileKey);
    auth.tokenFile = new TokenFile(
      path.resolve(dir, tokenFile),
      what,
      `fix ${tokenFileKey} in the kubeconfig`,
      now,
    );
  }
  const username = optString(b, 'username', what);
  const password = optString(b, 'password', what);
  if (password !== undefined && username === undefined) {
    throw new Error(`${what} has a password but no username. Fix: set username too.`);
  }
  if (username !== undefined) {
    methods.push('username/password');
    auth.basic = `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}`;
  }
  if (b.exec !== undefined && b.exec !== null) {
    methods.push('exec');
    auth.exec = new ExecPlugin(readExec(b.exec, dir, what), what, cluster.execInfo, now);
  }
  if (methods.length > 1) {
    throw new Error(
      `${what} sets more than one way to authenticate (${methods.join(', ')}). Fix: keep exactly one of them.`,
    );
  }
  return auth;
}

/** A PEM from base64 `-data` or a file; as client-go, the data wins when both are set. */
function pem(b: Obj, dataKey: string, fileKey: string, dir: string, what: string): Buffer | undefined {
  const data = optString(b, dataKey, what);
  if (data !== undefined) {
    const buf = Buffer.from(data, 'base64');
    // Buffer.from(…, 'base64') never fails; a pasted PEM (not base64) would decode to garbage.
    if (!buf.includes('-----BEGIN')) {
      throw new Error(
        `${what}: ${dataKey} is not base64 of a PEM block. Fix: set it to the output of "base64 -w0 <file.pem>", or use ${fileKey} with a path.`,
      );
    }
    return buf;
  }
  const file = optString(b, fileKey, what);
  if (file === undefined) return undefined;
  const full = path.resolve(dir, file);
  try {
    return readFileSync(full);
  } catch (err) {
    throw new Error(
      `${what}: cannot read ${fileKey} ${full}: ${errText(err)}. Fix: correct the path (relative paths are relative to the kubeconfig's directory).`,
      { cause: err },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

function makeAccess(a: {
  server: string;
  namespace: string;
  source: string;
  ca: Buffer | undefined;
  insecure: boolean;
  servername: string | undefined;
  auth: Auth;
}): ClusterAccess {
  const { auth } = a;
  const access: ClusterAccess = {
    server: a.server,
    namespace: a.namespace,
    source: a.source,
    insecure: a.insecure,
    // Closures, not methods on a prototype: callers may spread or destructure the object.
    async credentials() {
      const out: Credentials = {};
      if (auth.cert && auth.key) Object.assign(out, { cert: auth.cert, key: auth.key });
      if (auth.basic) out.authorization = auth.basic;
      if (auth.token !== undefined) out.authorization = `Bearer ${auth.token}`;
      if (auth.tokenFile) out.authorization = `Bearer ${await auth.tokenFile.get()}`;
      if (auth.exec) Object.assign(out, await auth.exec.get());
      return out;
    },
    invalidate() {
      auth.tokenFile?.invalidate();
      auth.exec?.invalidate();
    },
  };
  if (a.ca) access.ca = a.ca;
  if (a.servername !== undefined) access.servername = a.servername;
  return access;
}

/** A bearer token in a file that may be rotated underneath us (projected service account tokens). */
class TokenFile {
  private readonly file: string;
  private readonly owner: string;
  private readonly fix: string;
  private readonly now: Clock;
  private token: string;
  private readAt: number;

  constructor(file: string, owner: string, fix: string, now: Clock) {
    this.file = file;
    this.owner = owner;
    this.fix = fix;
    this.now = now;
    // Read once now so a missing token fails at startup, not on the first request.
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`${owner}: cannot read token file ${file}: ${errText(err)}. Fix: ${fix}.`, {
        cause: err,
      });
    }
    this.token = this.check(text);
    this.readAt = now();
  }

  async get(): Promise<string> {
    if (this.now() - this.readAt <= TOKEN_FILE_MAX_AGE_MS) return this.token;
    try {
      this.token = this.check(await readFile(this.file, 'utf8'));
      this.readAt = this.now();
    } catch {
      // As client-go: keep the last good token through a failed re-read (e.g. mid-rotation);
      // readAt stays old, so the next call tries again.
    }
    return this.token;
  }

  invalidate(): void {
    this.readAt = -Infinity;
  }

  private check(text: string): string {
    const token = text.trim();
    if (token === '') throw new Error(`${this.owner}: token file ${this.file} is empty. Fix: ${this.fix}.`);
    return token;
  }
}

type EnvVar = { name: string; value: string };

interface ExecConfig {
  command: string;
  args: string[];
  env: EnvVar[];
  apiVersion: string;
  provideClusterInfo: boolean;
  installHint: string | undefined;
}

function readExec(raw: unknown, dir: string, what: string): ExecConfig {
  if (!isObj(raw)) throw new Error(`${what}: exec must be a mapping with command and apiVersion.`);
  const w = `${what}, exec`;
  const command = optString(raw, 'command', w);
  if (command === undefined)
    throw new Error(`${w} has no command. Fix: set exec.command to the credential plugin.`);
  const apiVersion = optString(raw, 'apiVersion', w);
  if (apiVersion === undefined || !EXEC_API_VERSIONS.includes(apiVersion)) {
    throw new Error(
      `${w}: apiVersion ${apiVersion === undefined ? 'is not set' : `"${apiVersion}" is not supported`}. ` +
        `Fix: set exec.apiVersion to ${EXEC_API_VERSIONS.join(' or ')} (and update the plugin if it only speaks an older version).`,
    );
  }
  const args = raw.args ?? [];
  if (!Array.isArray(args) || !args.every((a): a is string => typeof a === 'string')) {
    throw new Error(`${w}: args must be a list of strings (quote numbers in YAML).`);
  }
  const env = raw.env ?? [];
  if (
    !Array.isArray(env) ||
    !env.every((e): e is EnvVar => isObj(e) && typeof e.name === 'string' && typeof e.value === 'string')
  ) {
    throw new Error(`${w}: env must be a list of {name, value} with string values (quote numbers in YAML).`);
  }
  return {
    // As client-go: a command with a path separator is relative to the kubeconfig, a bare name is looked up on PATH.
    command: command.includes('/') ? path.resolve(dir, command) : command,
    args,
    env,
    apiVersion,
    provideClusterInfo: optBool(raw, 'provideClusterInfo', w),
    installHint: optString(raw, 'installHint', w),
  };
}

interface CachedCredential {
  creds: Credentials;
  expiresAt: number;
}

/** An exec credential plugin, run on demand, its answer cached until it expires or a 401. */
class ExecPlugin {
  private cached: CachedCredential | undefined;
  private pending: Promise<Credentials> | undefined;
  // Bumped by invalidate(), so a run started before it cannot repopulate the cache after it.
  private generation = 0;

  private readonly cfg: ExecConfig;
  private readonly owner: string;
  private readonly clusterInfo: Obj;
  private readonly now: Clock;

  constructor(cfg: ExecConfig, owner: string, clusterInfo: Obj, now: Clock) {
    this.cfg = cfg;
    this.owner = owner;
    this.clusterInfo = clusterInfo;
    this.now = now;
  }

  get(): Promise<Credentials> {
    if (this.cached && this.now() < this.cached.expiresAt) return Promise.resolve(this.cached.creds);
    // Concurrent requests share one run of the plugin.
    if (!this.pending) {
      const generation = this.generation;
      const run: Promise<Credentials> = this.run()
        .then((c) => {
          if (generation === this.generation) this.cached = c;
          return c.creds;
        })
        .finally(() => {
          if (this.pending === run) this.pending = undefined;
        });
      this.pending = run;
    }
    return this.pending;
  }

  invalidate(): void {
    this.generation++;
    this.cached = undefined;
    this.pending = undefined;
  }

  private describe(): string {
    return [this.cfg.command, ...this.cfg.args]
      .map((s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s}'`))
      .join(' ');
  }

  private run(): Promise<CachedCredential> {
    const { cfg } = this;
    const info = {
      apiVersion: cfg.apiVersion,
      kind: 'ExecCredential',
      // The child's stdin is a pipe we close at once, never a terminal: no interactive login.
      spec: { interactive: false, ...(cfg.provideClusterInfo ? { cluster: this.clusterInfo } : {}) },
    };
    const env: NodeJS.ProcessEnv = { ...process.env, KUBERNETES_EXEC_INFO: JSON.stringify(info) };
    for (const e of cfg.env) env[e.name] = e.value;
    return new Promise((resolve, reject) => {
      const child = execFile(
        cfg.command,
        cfg.args,
        { env, timeout: EXEC_TIMEOUT_MS, encoding: 'utf8', maxBuffer: 4 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (err) reject(this.failure(err, stderr));
          else {
            try {
              resolve(this.parse(stdout));
            } catch (e) {
              reject(e instanceof Error ? e : new Error(String(e)));
            }
          }
        },
      );
      child.stdin?.end();
    });
  }

  private failure(err: ExecFileException, stderr: string): Error {
    const cmd = `exec credential plugin "${this.describe()}" of ${this.owner}`;
    const tail = stderr.trim() ? `; stderr: ${clip(stderr.trim(), 2000)}` : '; no stderr';
    if (err.code === 'ENOENT') {
      return new Error(
        `${cmd} failed: command not found. Fix: ${this.cfg.installHint?.trim() || `install ${this.cfg.command} or put it on PATH`}.`,
      );
    }
    if (err.code === 'EACCES') {
      return new Error(
        `${cmd} failed: permission denied. Fix: make ${this.cfg.command} executable (chmod +x).`,
      );
    }
    if (err.killed && err.signal) {
      return new Error(
        `${cmd} did not finish within ${EXEC_TIMEOUT_MS / 1000} s and was killed${tail}. ` +
          'Fix: run the command by hand; it may be waiting for an interactive login, which snapcron cannot do, so log in first.',
      );
    }
    const how =
      typeof err.code === 'number'
        ? `exit code ${err.code}`
        : err.signal
          ? `killed by signal ${err.signal}`
          : errText(err);
    return new Error(
      `${cmd} failed: ${how}${tail}. Fix: run the command by hand to see why (often an expired login: log in again).`,
    );
  }

  private parse(stdout: string): CachedCredential {
    const cmd = `exec credential plugin "${this.describe()}" of ${this.owner}`;
    const bad = (why: string) =>
      new Error(
        `${cmd} ${why}. Fix: the plugin must print an ExecCredential (${this.cfg.apiVersion}) on stdout.`,
      );
    let out: unknown;
    try {
      out = JSON.parse(stdout);
    } catch {
      throw bad(`printed no JSON (stdout began: ${JSON.stringify(clip(stdout.trim(), 200))})`);
    }
    if (!isObj(out) || out.kind !== 'ExecCredential')
      throw bad('printed something other than an ExecCredential');
    if (out.apiVersion !== this.cfg.apiVersion) {
      throw bad(
        `answered with apiVersion ${JSON.stringify(out.apiVersion)} but the kubeconfig asks for ${this.cfg.apiVersion}`,
      );
    }
    const status = out.status;
    if (!isObj(status)) throw bad('printed an ExecCredential without status');
    const token = nonEmpty(status.token);
    const cert = nonEmpty(status.clientCertificateData);
    const key = nonEmpty(status.clientKeyData);
    if (token === undefined && cert === undefined && key === undefined) {
      throw bad('returned neither status.token nor status.clientCertificateData/clientKeyData');
    }
    if ((cert === undefined) !== (key === undefined)) {
      throw bad('returned only one of status.clientCertificateData and status.clientKeyData');
    }
    let expiresAt = Infinity;
    if (status.expirationTimestamp !== undefined && status.expirationTimestamp !== null) {
      expiresAt =
        typeof status.expirationTimestamp === 'string' ? Date.parse(status.expirationTimestamp) : NaN;
      if (Number.isNaN(expiresAt)) {
        throw bad(
          `returned status.expirationTimestamp ${JSON.stringify(status.expirationTimestamp)}, not an RFC 3339 time`,
        );
      }
    }
    const creds: Credentials = {};
    if (token !== undefined) creds.authorization = `Bearer ${token}`;
    if (cert !== undefined && key !== undefined)
      Object.assign(creds, { cert: Buffer.from(cert), key: Buffer.from(key) });
    return { creds, expiresAt };
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A string field; absent, null and '' all mean unset, as in kubectl. */
function optString(o: Obj, key: string, what: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') {
    throw new Error(`${what}: ${key} must be a string, not ${JSON.stringify(v)}. Fix: quote it in the YAML.`);
  }
  return v;
}

function optBool(o: Obj, key: string, what: string): boolean {
  const v = o[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean')
    throw new Error(`${what}: ${key} must be true or false, not ${JSON.stringify(v)}.`);
  return v;
}

function nonEmpty(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function readOptional(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

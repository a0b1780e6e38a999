// `npm run -s kubectl -- ARGS`: the kubectl a user would run, on this machine. It is built from
// the same Kubernetes module and version as the local control plane (hack/build-kubectl.sh,
// cached; SNAPCRON_KUBECTL uses another), talks to the cluster of `npm run cluster:up` while one
// runs (unless KUBECONFIG or --kubeconfig says otherwise), and finds `kubectl snapcron` (the
// plugin package.json's bin installs) run from this checkout's source.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Where hack/cluster.ts records the running cluster (overridable for tests). */
const STATE = process.env.SNAPCRON_CLUSTER_STATE ?? join(ROOT, '.cluster', 'state.json');
const say = (msg: string): void => void process.stderr.write(`[kubectl] ${msg}\n`);

/** The built kubectl's path; a first build's progress shows, the cache hit's note does not. */
async function kubectlBinary(): Promise<string> {
  const build = spawn('bash', [join(ROOT, 'hack/build-kubectl.sh')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  build.stdout.on('data', (d: Buffer) => (out += d.toString()));
  build.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    const lines = err.split('\n');
    err = lines.pop() ?? '';
    for (const line of lines)
      if (!/\] cached: |^using SNAPCRON_KUBECTL=/.test(line)) process.stderr.write(`${line}\n`);
  });
  const code = await new Promise<number | null>((resolve) => build.once('exit', resolve));
  if (code !== 0) {
    say(`hack/build-kubectl.sh failed (exit ${code}); SNAPCRON_KUBECTL=/path/to/kubectl uses another`);
    process.exit(1);
  }
  return out.trim().split('\n').at(-1) ?? '';
}

/** The kubeconfig of `npm run cluster:up`, when it is running. */
function localCluster(): string | undefined {
  if (!existsSync(STATE)) return undefined;
  const state = JSON.parse(readFileSync(STATE, 'utf8')) as { pid: number; kubeconfig: string };
  try {
    process.kill(state.pid, 0);
  } catch {
    return undefined; // stopped without cluster:down: its kubeconfig points nowhere
  }
  return state.kubeconfig;
}

/** A directory holding `kubectl-snapcron`, as `npm install -g snapcron` would put it on PATH. */
function pluginDir(): string {
  const dir = join(ROOT, '.cluster', 'bin');
  mkdirSync(dir, { recursive: true });
  const plugin = join(dir, 'kubectl-snapcron');
  const text = `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'src/cli.ts')}" "$@"\n`;
  if (!existsSync(plugin) || readFileSync(plugin, 'utf8') !== text) writeFileSync(plugin, text);
  chmodSync(plugin, 0o755);
  return dir;
}

const args = process.argv.slice(2);
const env = { ...process.env };
const explicit = env.KUBECONFIG || args.some((a) => a === '--kubeconfig' || a.startsWith('--kubeconfig='));
if (!explicit) {
  const local = localCluster();
  if (local) env.KUBECONFIG = local;
  else if (!existsSync(join(homedir(), '.kube', 'config')))
    say('no cluster: start one with `npm run cluster:up`, or set KUBECONFIG');
}
env.PATH = [pluginDir(), dirname(process.execPath), env.PATH ?? ''].join(':');

const child = spawn(await kubectlBinary(), args, { env, stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
child.once('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));

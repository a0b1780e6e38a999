// A local control plane for people and scripts: `npm run cluster:up` starts one in the
// background and prints KUBECONFIG=<path> as its last line; `npm run cluster:down` stops it.
// `npm run cluster:up -- --node` adds a real node (dev/node.ts: kubelet, containerd,
// scheduler, workload controllers) and the CSI stack with its node side; `cluster:down` then
// deletes the pods, stops the node and restores the host settings it changed.
// SNAPCRON_CLUSTER_DIR keeps the state (kubeconfig, log, pid) elsewhere than .cluster/, for a
// second cluster beside the first (test/integration/cluster-script.test.ts uses it).
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAlive } from '../dev/processes.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STATE_DIR = process.env.SNAPCRON_CLUSTER_DIR || join(ROOT, '.cluster');
const STATE = join(STATE_DIR, 'state.json');
const KUBECONFIG = join(STATE_DIR, 'kubeconfig');
const say = (msg: string): void => void process.stderr.write(`[cluster] ${msg}\n`);

interface State {
  pid: number;
  kubeconfig: string;
  server: string;
  node?: string;
}

const withNode = process.argv.includes('--node');

async function up(): Promise<void> {
  if (existsSync(STATE)) {
    const state = JSON.parse(readFileSync(STATE, 'utf8')) as State;
    if (isAlive(state.pid)) {
      say(`already running (pid ${state.pid}, ${state.server})`);
      console.log(`KUBECONFIG=${state.kubeconfig}`);
      return;
    }
    rmSync(STATE);
  }
  mkdirSync(STATE_DIR, { recursive: true });
  say(
    'starting etcd, kube-apiserver and kube-controller-manager (the first run builds them from Go modules: ~6 min)',
  );
  const log = openSync(join(STATE_DIR, 'cluster.log'), 'a');
  if (withNode)
    say(
      'and a real node: kubelet, containerd, kube-scheduler, workload controllers, CSI node side (it changes host settings; cluster:down restores them)',
    );
  const child = spawn(
    process.execPath,
    [fileURLToPath(import.meta.url), 'serve', ...(withNode ? ['--node'] : [])],
    {
      detached: true,
      stdio: ['ignore', log, log],
    },
  );
  child.unref();
  const deadline = Date.now() + 20 * 60_000;
  while (Date.now() < deadline) {
    if (existsSync(STATE)) {
      const state = JSON.parse(readFileSync(STATE, 'utf8')) as State;
      say(
        `running: ${state.server}${state.node ? ` with node ${state.node}` : ''} (pid ${state.pid}); stop with npm run cluster:down; log ${join(STATE_DIR, 'cluster.log')}`,
      );
      console.log(`KUBECONFIG=${state.kubeconfig}`);
      return;
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`control plane did not start; see ${join(STATE_DIR, 'cluster.log')}`);
}

async function serve(): Promise<void> {
  const { ControlPlane } = await import('../dev/control-plane.ts');
  const { CsiStack } = await import('../dev/csi-stack.ts');
  const { stopStarted } = await import('../dev/started.ts');
  let stopNode = async (): Promise<void> => undefined;
  // From the start: cluster:down while the control plane still starts stops what has started
  // (its processes run in their own process groups, so nothing else would).
  const stop = (): void => {
    void stopNode()
      .catch((err: unknown) => say(`node stop: ${String(err)}`))
      .then(stopStarted)
      .finally(() => {
        rmSync(STATE, { force: true });
        process.exit(0);
      });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const cp = await ControlPlane.start();
  copyFileSync(cp.kubeconfigPath, KUBECONFIG);
  const state: State = { pid: process.pid, kubeconfig: KUBECONFIG, server: cp.server };
  if (withNode) {
    const { Node, PLUGINS_REGISTRY } = await import('../dev/node.ts');
    const node = await Node.start({ kubeconfig: KUBECONFIG, dir: join(STATE_DIR, 'node') }).catch(
      async (err) => {
        await cp.stop();
        throw err;
      },
    );
    const stack = await CsiStack.start(KUBECONFIG, join(STATE_DIR, 'csi'), {
      node: { nodeId: node.name, registrationDir: PLUGINS_REGISTRY },
    });
    state.node = node.name;
    // The node first: its pods' volumes are unpublished through the still-running CSI driver.
    stopNode = async () => {
      await node.stop();
      await stack.stop();
    };
  }
  writeFileSync(STATE, JSON.stringify(state));
  setInterval(() => undefined, 1 << 30);
}

async function down(): Promise<void> {
  if (!existsSync(STATE)) {
    say('not running');
    return;
  }
  const state = JSON.parse(readFileSync(STATE, 'utf8')) as State;
  if (isAlive(state.pid)) {
    process.kill(state.pid, 'SIGTERM');
    // A node deletes its pods and restores host settings first: give it time.
    for (let i = 0; i < (state.node ? 900 : 100) && isAlive(state.pid); i++)
      await new Promise((r) => setTimeout(r, 200));
  }
  rmSync(STATE, { force: true });
  rmSync(KUBECONFIG, { force: true });
  say(state.node ? `stopped (node ${state.node} too; host settings restored)` : 'stopped');
}

const command = process.argv[2];
const run = command === 'up' ? up : command === 'down' ? down : command === 'serve' ? serve : undefined;
if (!run) {
  console.error('usage: node hack/cluster.ts up [--node] | down');
  process.exit(2);
}
await run();

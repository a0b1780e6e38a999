/**
 * Exec of a schedule's pre and post hooks (spec.hooks) in its pods: pods/exec through the API
 * server to the kubelet (client-node's Exec, a websocket, loaded on first use), stdout and stderr captured, the exit
 * status read from the status channel. The executor decides when; this only runs commands.
 */
import { Writable } from 'node:stream';
import type * as k8s from '@kubernetes/client-node';
import type { Hook, LabelSelector } from '../api/types.generated.ts';
import type { Kube } from '../kube/client.ts';
import { errorMessage, statusOf } from '../kube/retry.ts';
import { matchesSelector } from '../kube/selector.ts';

/** Default and bounds of spec.hooks.*.timeoutSeconds (the CRD states the same). */
export const HOOK_TIMEOUT_SECONDS = 30;
/** How much of a command's output a message keeps: its end, where errors are. */
const OUTPUT_TAIL = 1024;

export interface HookOutcome {
  pod: string;
  container: string;
  ok: boolean;
  /** The command's exit status, when it ended. */
  exitCode?: number;
  timedOut?: boolean;
  /** Why it did not run or end normally (pod gone, exec refused, connection lost). */
  error?: string;
  /** The last 1 KiB of stdout and stderr, interleaved as received. */
  output: string;
  ms: number;
}

/** One line naming where and how a hook failed, for conditions and events. */
export function describeFailure(o: HookOutcome, timeoutSeconds: number): string {
  const how = o.timedOut
    ? `timed out after ${timeoutSeconds}s`
    : o.exitCode !== undefined
      ? `exit code ${o.exitCode}`
      : (o.error ?? 'failed');
  const out = o.output.trim();
  return `pod ${o.pod} container ${o.container}: ${how}${out ? `; output: ${out.slice(-OUTPUT_TAIL)}` : ''}`;
}

/** The exit status in a pods/exec status message: Success is 0, NonZeroExitCode carries it in causes. */
function exitCodeOf(status: k8s.V1Status): number | undefined {
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  const code = cause?.message !== undefined ? Number.parseInt(cause.message, 10) : Number.NaN;
  return Number.isNaN(code) ? undefined : code;
}

class Tail extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text = (this.text + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
    done();
  }
}

interface Socket {
  close(): void;
  on(event: 'close', listener: () => void): void;
}

/** What the executor needs of a HookRunner (a test may record instead of exec'ing). */
export type HookExec = Pick<HookRunner, 'selectPods' | 'run'>;

export class HookRunner {
  private readonly kube: Kube;
  private exec: Promise<k8s.Exec> | undefined;
  constructor(kube: Kube) {
    this.kube = kube;
  }

  /**
   * client-node's Exec, loaded on the first hook: importing client-node adds about 90 MiB of
   * RSS (BENCHMARKS.md), which only schedules with hooks pay. Same kubeconfig (file, context) as `kube`.
   */
  private execClient(): Promise<k8s.Exec> {
    this.exec ??= import('@kubernetes/client-node').then((lib) => {
      const kc = new lib.KubeConfig();
      const { file, context } = this.kube.origin;
      if (file) kc.loadFromFile(file);
      else kc.loadFromDefault();
      if (context) kc.setCurrentContext(context);
      return new lib.Exec(kc);
    });
    return this.exec;
  }

  /** The Running pods of the namespace that the selector selects, by name. */
  async selectPods(namespace: string, selector: LabelSelector): Promise<string[]> {
    const pods = (await this.kube.read(() => this.kube.core.listNamespacedPod({ namespace }))).items;
    return pods
      .filter(
        (p) =>
          p.status?.phase === 'Running' &&
          !p.metadata?.deletionTimestamp &&
          matchesSelector(p.metadata?.labels, selector),
      )
      .map((p) => p.metadata?.name ?? '')
      .sort();
  }

  /** Runs the hook's command in every named pod at once; one outcome per pod. */
  run(namespace: string, pods: string[], hook: Hook): Promise<HookOutcome[]> {
    return Promise.all(pods.map((pod) => this.runOne(namespace, pod, hook)));
  }

  private async runOne(namespace: string, pod: string, hook: Hook): Promise<HookOutcome> {
    const started = Date.now();
    let container = hook.container ?? '';
    const fail = (error: string): HookOutcome => ({
      pod,
      container: container || '(first)',
      ok: false,
      error,
      output: '',
      ms: Date.now() - started,
    });
    if (!container) {
      // The exec API wants a container name when a pod has several: the first, as documented.
      try {
        const p = await this.kube.read(() => this.kube.core.readNamespacedPod({ name: pod, namespace }));
        container = p.spec?.containers[0]?.name ?? '';
      } catch (err) {
        return fail(
          statusOf(err) === 404
            ? 'pod not found (deleted since the pre hook ran?)'
            : `could not read the pod: ${errorMessage(err)}`,
        );
      }
    }
    const timeoutMs = (hook.timeoutSeconds ?? HOOK_TIMEOUT_SECONDS) * 1000;
    const output = new Tail();
    return new Promise<HookOutcome>((resolve) => {
      let settled = false;
      let socket: Socket | undefined;
      const finish = (o: Omit<HookOutcome, 'pod' | 'container' | 'output' | 'ms'>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try {
          socket?.close();
        } catch {
          // already closed
        }
        resolve({ pod, container, output: output.text, ms: Date.now() - started, ...o });
      };
      // A timeout closes the stream; Kubernetes has no way to kill an exec'd process, so the
      // command may run on in the container until it ends by itself (README: Hooks).
      const timer = setTimeout(() => finish({ ok: false, timedOut: true }), timeoutMs);
      this.execClient()
        .then((client) =>
          client.exec(namespace, pod, container, hook.command, output, output, null, false, (status) => {
            const exitCode = exitCodeOf(status);
            finish(
              exitCode === undefined
                ? { ok: false, error: status.message ?? status.reason ?? 'exec failed' }
                : { ok: exitCode === 0, exitCode },
            );
          }),
        )
        .then((opened: unknown) => {
          // isomorphic-ws's types do not resolve here; the two methods used are plain ws ones.
          const ws = opened as Socket;
          socket = ws;
          if (settled) ws.close();
          ws.on('close', () =>
            // The status message comes before the close; a close without one is a lost connection.
            setTimeout(
              () => finish({ ok: false, error: 'the exec stream closed without an exit status' }),
              50,
            ),
          );
        })
        .catch((err: unknown) => finish({ ok: false, error: `exec refused: ${errorMessage(err)}` }));
    });
  }
}

/**
 * helm as a user has it, built from its Go module (hack/build-helm.sh, cached in
 * ~/.cache/snapcron; $SNAPCRON_HELM wins), and a small runner for it and kubectl.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { hackScriptOutput } from '../../dev/hack-script.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The helm binary (built on first use). */
export const helmBinary = (): string => hackScriptOutput('hack/build-helm.sh');

export interface Ran {
  code: number | null;
  out: string;
  err: string;
}

/**
 * Runs a program from the repository root with KUBECONFIG set; never rejects on a non-zero exit.
 * A program still running after `timeoutMs` is killed and answers code null with the reason in
 * `err`, so a stalled step fails as that step, not as the whole test's timeout.
 */
export function runTool(
  bin: string,
  args: string[],
  kubeconfig: string,
  input?: string,
  timeoutMs?: number,
): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, args, {
      cwd: ROOT,
      env: { ...process.env, KUBECONFIG: kubeconfig },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let timedOut = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            proc.kill('SIGKILL');
          }, timeoutMs);
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.once('error', reject);
    // 'close', not 'exit': stdout may still hold data when the process has exited.
    proc.once('close', (code) => {
      clearTimeout(timer);
      if (timedOut) err += `\n${args.slice(0, 2).join(' ')}: killed, still running after ${timeoutMs} ms`;
      resolve({ code: timedOut ? null : code, out, err });
    });
    proc.stdin.end(input ?? '');
  });
}

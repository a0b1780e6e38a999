/** Runs snapcron as real child processes (controller, tick), as a Deployment or CronJob would. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, onTestFailed } from 'vitest';
import { kubeconfigPath } from './kube.ts';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

export interface Running {
  proc: ChildProcess;
  output: () => string;
  /** Parsed pino lines so far. */
  logs: () => Record<string, unknown>[];
  metricsPort: () => Promise<number>;
  kill: (signal?: NodeJS.Signals) => Promise<number | null>;
}

const live = new Set<ChildProcess>();
afterEach(async () => {
  for (const p of live) {
    p.kill('SIGKILL');
  }
  live.clear();
  await new Promise((r) => setTimeout(r, 50));
});

export function startController(
  namespace: string,
  extra: string[] = [],
  identity = 'ctl',
  kubeconfig = kubeconfigPath(),
  env: NodeJS.ProcessEnv = {},
): Running {
  const proc = spawn(
    process.execPath,
    [
      CLI,
      'controller',
      `--namespace=${namespace}`,
      `--lease-namespace=${namespace}`,
      '--metrics-addr=127.0.0.1:0',
      '--webhook-addr=off',
      '--lease-duration=3s',
      '--retry-period=500ms',
      `--identity=${identity}`,
      '--log-level=debug',
      ...extra,
    ],
    { env: { ...process.env, KUBECONFIG: kubeconfig, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  live.add(proc);
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  // A failing test shows what the controller said.
  onTestFailed(
    () => void process.stderr.write(`--- controller ${identity} output ---\n${out.slice(-20_000)}\n`),
  );
  const logs = (): Record<string, unknown>[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    proc,
    output: () => out,
    logs,
    metricsPort: async () => {
      for (let i = 0; i < 300; i++) {
        const line = logs().find((l) => l.msg === 'serving /metrics, /healthz, /readyz');
        if (line) return Number(line.port);
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`controller did not start:\n${out}`);
    },
    kill: async (signal = 'SIGTERM') => {
      proc.kill(signal);
      const code = await exited;
      live.delete(proc);
      return code;
    },
  };
}

export async function metrics(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** One `snapcron tick`; resolves with its exit code and output. */
export function runTick(
  namespace: string,
  extra: string[] = [],
  kubeconfig = kubeconfigPath(),
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, 'tick', `--namespace=${namespace}`, ...extra], {
      env: { ...process.env, KUBECONFIG: kubeconfig },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('exit', (code) => resolve({ code, out }));
  });
}

export interface Finished {
  code: number | null;
  out: string;
  err: string;
}

/** Runs a program to its end with this environment added to the test's; its exit code, stdout and stderr. */
export function runProgram(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Finished> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.once('exit', (code) => resolve({ code, out, err }));
  });
}

/** Any snapcron command as a child process. */
export function runCli(args: string[]): Promise<Finished> {
  return runProgram(process.execPath, [CLI, ...args], { KUBECONFIG: kubeconfigPath() });
}

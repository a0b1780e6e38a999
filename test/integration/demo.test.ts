import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isAlive, processesMentioning } from '../../dev/processes.ts';

const DEMO_STATE = join(fileURLToPath(new URL('../..', import.meta.url)), '.cluster', 'demo');

/**
 * Runs the demo; `interruptAt`: sends SIGINT once the output matches it. Returns its exit code,
 * its output, and what it started that still runs afterwards: processes of its control plane's
 * directory and of .cluster/demo (the CSI stack), and the controller.
 */
async function demo(
  args: string[],
  interruptAt?: RegExp,
): Promise<{ code: number | null; out: string; left: string[] }> {
  const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const p = spawn(process.execPath, ['hack/demo.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sent = false;
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (interruptAt && !sent && interruptAt.test(out)) {
        sent = true;
        p.kill('SIGINT');
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.once('exit', (code) => resolve({ code, out }));
  });
  const cpDir = /KUBECONFIG=(\/\S+)\/kubeconfig\)/.exec(out)?.[1];
  const controllerPid = Number(/snapcron controller running \(pid (\d+)\)/.exec(out)?.[1] ?? 0);
  const left = processesMentioning([DEMO_STATE, ...(cpDir ? [cpDir] : [])]).map(
    (p) => `${p.pid}: ${p.args.join(' ').slice(0, 300)}`,
  );
  if (controllerPid && isAlive(controllerPid)) left.push(`${controllerPid}: the snapcron controller`);
  return { code, out, left };
}

describe("npm run demo (the README's first command)", () => {
  it('runs the seed flow on its own control plane and CSI stack, verifies the data, and cleans up with --exit', async () => {
    const { code, out, left } = await demo(['--exit']);
    expect(code, out).toBe(0);
    expect(out).toMatch(/\[6\/6\] Verify the data came back/);
    expect(out).toMatch(/= original ✔/);
    expect(out).toMatch(/present: no ✔ \(point in time\)/);
    expect(out).toMatch(/\d+ taken, [1-9]\d* pruned by retention/);
    expect(out).toMatch(/export KUBECONFIG=.*\.cluster\/demo\/kubeconfig/);
    expect(out).toMatch(/snapcron controller running \(pid \d+\)/);
    expect(left, 'still running after --exit').toEqual([]);
  }, 600_000);

  it('Ctrl-C while it is still starting stops everything started so far and exits 130', async () => {
    // [2/6] is printed once the control plane is up, while the CSI stack and the controller start.
    const { code, out, left } = await demo([], /\[2\/6\]/);
    expect(out).toMatch(/KUBECONFIG=\/\S+\/kubeconfig\)/); // the control plane was up
    expect(out).toMatch(/demo: interrupted; stopping what was started/);
    expect(code, out).toBe(130);
    expect(left, 'still running after Ctrl-C').toEqual([]);
  }, 600_000);
});

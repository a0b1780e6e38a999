import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe("npm run demo (the README's first command)", () => {
  it('runs the seed flow on its own control plane and CSI stack, verifies the data, and cleans up with --exit', async () => {
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(process.execPath, ['hack/demo.ts', '--exit'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      p.once('exit', (code) => resolve({ code, out }));
    });
    expect(code, out).toBe(0);
    expect(out).toMatch(/\[6\/6\] Verify the data came back/);
    expect(out).toMatch(/= original ✔/);
    expect(out).toMatch(/present: no ✔ \(point in time\)/);
    expect(out).toMatch(/\d+ taken, [1-9]\d* pruned by retention/);
    expect(out).toMatch(/export KUBECONFIG=.*\.cluster\/demo\/kubeconfig/);
  }, 600_000);
});

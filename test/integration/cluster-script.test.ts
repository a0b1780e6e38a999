/**
 * `npm run cluster:up` / `cluster:down` (README): up starts a control plane in the background
 * and prints KUBECONFIG=<path> as its last line, a second up finds it running and prints the
 * same line, and down stops it. Run in a directory of its own (SNAPCRON_CLUSTER_DIR), beside
 * any cluster of the developer's in .cluster/.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AdminKube } from '../../dev/admin-kube.ts';
import { isAlive } from '../../dev/processes.ts';

const dir = mkdtempSync(join(tmpdir(), 'snapcron-cluster-'));

function cluster(command: 'up' | 'down'): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['hack/cluster.ts', command], {
      env: { ...process.env, SNAPCRON_CLUSTER_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('exit', (code) => resolve({ code, out, err }));
  });
}

afterAll(async () => {
  await cluster('down');
  rmSync(dir, { recursive: true, force: true });
});

describe('npm run cluster:up / cluster:down', () => {
  it('up prints KUBECONFIG=<path> last, a second up the same, and down stops it', async () => {
    const first = await cluster('up');
    expect(first.code, first.err).toBe(0);
    const lines = first.out.trim().split('\n');
    expect(lines.at(-1)).toBe(`KUBECONFIG=${join(dir, 'kubeconfig')}`);
    const { pid } = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { pid: number };
    expect(isAlive(pid)).toBe(true);

    const kube = AdminKube.fromFile(join(dir, 'kubeconfig'), { retry: { attempts: 1, baseMs: 100 } });
    const namespaces = await kube.core.listNamespace();
    expect(namespaces.items.map((n) => n.metadata?.name)).toContain('default');

    const again = await cluster('up');
    expect(again.code, again.err).toBe(0);
    expect(again.out.trim().split('\n').at(-1)).toBe(`KUBECONFIG=${join(dir, 'kubeconfig')}`);
    expect(again.err).toMatch(new RegExp(`already running \\(pid ${pid}, https://127\\.0\\.0\\.1:\\d+\\)`));

    const down = await cluster('down');
    expect(down.code, down.err).toBe(0);
    expect(down.err).toMatch(/\[cluster\] stopped/);
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(join(dir, 'state.json'))).toBe(false);
    expect(existsSync(join(dir, 'kubeconfig'))).toBe(false);
    await expect(kube.core.listNamespace()).rejects.toThrow();
  }, 180_000);
});

/**
 * `npm run cluster:up` / `cluster:down` (README): up starts a control plane in the background
 * and prints KUBECONFIG=<path> as its last line, a second up finds it running and prints the
 * same line, and down stops it. Run in a directory of its own (SNAPCRON_CLUSTER_DIR), beside
 * any cluster of the developer's in .cluster/.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AdminKube } from '../../dev/admin-kube.ts';
import { isAlive } from '../../dev/processes.ts';
import { runProgram, type Finished } from '../env/processes.ts';

const dir = mkdtempSync(join(tmpdir(), 'snapcron-cluster-'));

const cluster = (command: 'up' | 'down'): Promise<Finished> =>
  runProgram(process.execPath, ['hack/cluster.ts', command], { SNAPCRON_CLUSTER_DIR: dir });

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

import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onFirstStopSignal } from '../../src/cli/signals.ts';
import { writeLocalKubeconfig } from '../support/kubeconfig.ts';

describe('the controller stops on its first SIGTERM or SIGINT', () => {
  for (const [first, second] of [
    ['SIGTERM', 'SIGINT'],
    ['SIGINT', 'SIGTERM'],
    ['SIGTERM', 'SIGTERM'],
  ] as const) {
    it(`${first} starts one shutdown; a later ${second} is left to the default action`, () => {
      const proc = new EventEmitter();
      const shutdowns: string[] = [];
      onFirstStopSignal((s) => shutdowns.push(s), proc);
      proc.emit(first);
      expect(shutdowns).toEqual([first]);
      // src/cli.ts exits on a signal when its own handler is the only one left.
      expect(proc.listenerCount('SIGTERM') + proc.listenerCount('SIGINT')).toBe(0);
      proc.emit(second);
      expect(shutdowns).toEqual([first]);
    });
  }
});

/**
 * The process-level promise (README "Signals"): a command without its own handler exits at once
 * with 128 + the signal's number, and a controller that is already shutting down exits on a
 * second signal. The API server here accepts connections and never answers, so every command
 * would otherwise wait on it.
 */
describe('snapcron processes and stop signals', () => {
  const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
  let server: Server;
  let connections = 0;
  let kubeconfig = '';
  const sockets: Socket[] = [];

  beforeAll(async () => {
    server = createServer((socket) => {
      connections++;
      sockets.push(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const dir = mkdtempSync(join(tmpdir(), 'snapcron-signals-'));
    kubeconfig = join(dir, 'kubeconfig');
    writeLocalKubeconfig(kubeconfig, `https://127.0.0.1:${port}`, { token: 'x' }, 'default');
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  /** Starts `snapcron args`, sends `signals` once it has connected to the API server (1 s apart), and resolves with its exit. */
  async function stopWith(
    args: string[],
    signals: NodeJS.Signals[],
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; out: string }> {
    const before = connections;
    const p = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, KUBECONFIG: kubeconfig },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      p.once('exit', (code, signal) => r({ code, signal })),
    );
    for (let i = 0; i < 300 && connections === before && p.exitCode === null; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(connections, `${args[0]} never reached the API server:\n${out}`).toBeGreaterThan(before);
    const t0 = Date.now();
    for (const [i, s] of signals.entries()) {
      if (i > 0) await new Promise((r) => setTimeout(r, 1000));
      p.kill(s);
    }
    const result = await exited;
    return { ...result, ms: Date.now() - t0, out };
  }

  it('tick exits at once with 143 on SIGTERM', async () => {
    const r = await stopWith(['tick'], ['SIGTERM']);
    expect(r.code, r.out).toBe(143);
    expect(r.ms).toBeLessThan(3000);
  });

  it('report exits at once with 130 on SIGINT', async () => {
    const r = await stopWith(['report', '-n', 'default'], ['SIGINT']);
    expect(r.code, r.out).toBe(130);
    expect(r.ms).toBeLessThan(3000);
  });

  it('a controller shutting down (waiting on the API server) exits 143 on a second SIGTERM', async () => {
    const r = await stopWith(
      ['controller', '--webhook-addr=off', '--metrics-addr=127.0.0.1:0', '--lease-namespace=default'],
      ['SIGTERM', 'SIGTERM'],
    );
    expect(r.code, r.out).toBe(143);
    expect(r.ms).toBeLessThan(5000);
  });
});

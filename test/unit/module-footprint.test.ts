/**
 * What the controller's process loads at start-up. Every module loaded stays in its memory for
 * its whole life: the README promises that @kubernetes/client-node is loaded only to exec hooks
 * and the ECS SDK only with --cloud, and BENCHMARKS.md counts on node:http being reached
 * without undici, http2 and web streams (an ES import of node:http loads them for its lazy
 * WebSocket export: 5 MiB of RSS at start-up). A fresh Node imports the CLI's entry point, as
 * `snapcron controller` does before it parses its options, and lists what came in.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** The child: records every npm package resolved, imports the CLI, prints builtins and packages. */
const CHILD = `
import { registerHooks } from 'node:module';
const packages = new Set();
registerHooks({
  resolve(specifier, context, next) {
    const found = next(specifier, context);
    const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(found.url);
    if (m) packages.add(m[1]);
    return found;
  },
});
await import(${JSON.stringify(MAIN)});
const builtins = process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13));
process.stdout.write(JSON.stringify({ builtins, packages: [...packages] }));
`;

function loaded(): Promise<{ builtins: string[]; packages: string[] }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', CHILD],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as { builtins: string[]; packages: string[] });
      },
    );
  });
}

describe("the controller's start-up footprint", () => {
  it('loads TLS for its own HTTP client, not undici, http2, web streams, client-node or the ECS SDK', async () => {
    const { builtins, packages } = await loaded();
    // The import really happened: TLS for its own client, the webhook's https server, its logger
    // and its cron library are in.
    expect(builtins).toContain('tls');
    expect(builtins).toContain('https');
    expect(packages).toEqual(expect.arrayContaining(['pino', 'node-cron', 'luxon', 'ajv']));
    expect(builtins.filter((m) => /undici|http2|webstreams/.test(m))).toEqual([]);
    expect(packages.filter((p) => p.startsWith('@kubernetes/') || p.startsWith('@alicloud/'))).toEqual([]);
  }, 90_000);
});

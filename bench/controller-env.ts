// The controller's environment as the image runs it, for the benches to measure the same
// process (test/integration/bench-scale.test.ts checks the Dockerfile and the manifests agree).
import { spawnSync } from 'node:child_process';

/** V8's memory flags: deploy/base/controller.yaml, the chart and the image set them. */
export const CONTROLLER_NODE_OPTIONS = '--max-old-space-size=384 --max-semi-space-size=4';

/**
 * jemalloc in place of glibc's malloc, as the image preloads it (Debian's libjemalloc2): one
 * arena, no thread caches, and freed pages handed back to the kernel a second after they are
 * freed, by jemalloc's own thread while the controller is idle. glibc's malloc kept about 7 MiB
 * of freed fragments resident in a controller at rest (BENCHMARKS.md).
 */
export const JEMALLOC_ENV = {
  LD_PRELOAD: 'libjemalloc.so.2',
  MALLOC_CONF: 'narenas:1,tcache:false,dirty_decay_ms:1000,muzzy_decay_ms:0,background_thread:true',
};

/** The image's environment (Dockerfile ENV). */
export const CONTROLLER_ENV = { NODE_OPTIONS: CONTROLLER_NODE_OPTIONS, ...JEMALLOC_ENV };

/** glibc's malloc as it was shipped before jemalloc: two arenas instead of eight per core. */
export const GLIBC_ENV = { MALLOC_ARENA_MAX: '2' };

export type Allocator = 'jemalloc' | 'glibc';

let jemallocPresent: boolean | undefined;

/** Whether this machine's loader finds libjemalloc.so.2 (`apt-get install libjemalloc2`). */
export function jemallocInstalled(): boolean {
  jemallocPresent ??=
    spawnSync(
      process.execPath,
      [
        '-e',
        'process.stdout.write(String(/libjemalloc/.test(require("fs").readFileSync("/proc/self/maps", "utf8"))))',
      ],
      { env: { PATH: process.env.PATH, ...JEMALLOC_ENV }, encoding: 'utf8' },
    ).stdout === 'true';
  return jemallocPresent;
}

/** The image's allocator when this machine has it, else glibc's. */
export const defaultAllocator = (): Allocator => (jemallocInstalled() ? 'jemalloc' : 'glibc');

/** `--allocator`'s value: jemalloc, glibc, or none given (the default). */
export function allocatorOption(v: string | undefined): Allocator | undefined {
  if (v === undefined || v === 'jemalloc' || v === 'glibc') return v;
  throw new Error(`--allocator must be jemalloc (the image's) or glibc, got "${v}"`);
}

/**
 * The environment a bench gives its controller: the image's, or glibc's malloc as the baseline;
 * without an allocator named, the image's where this machine has it.
 */
export function controllerEnv(
  allocator: Allocator = defaultAllocator(),
  mallocConf?: string,
): Record<string, string> {
  if (allocator === 'jemalloc' && !jemallocInstalled())
    throw new Error(
      'libjemalloc.so.2 is not installed, so the controller cannot run as the image runs it: apt-get install libjemalloc2, or pass --allocator glibc',
    );
  if (allocator === 'glibc') return { NODE_OPTIONS: CONTROLLER_NODE_OPTIONS, ...GLIBC_ENV };
  return {
    NODE_OPTIONS: CONTROLLER_NODE_OPTIONS,
    ...JEMALLOC_ENV,
    ...(mallocConf ? { MALLOC_CONF: mallocConf } : {}),
  };
}

/** How a bench's output names the allocator it measured (the default as controllerEnv picks it). */
export function allocatorNote(allocator: Allocator = defaultAllocator(), mallocConf?: string): string {
  if (allocator === 'glibc') {
    const settings = Object.entries(GLIBC_ENV)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    return `glibc's (${settings})${jemallocInstalled() ? '' : ': libjemalloc2 is not installed here, the image preloads it (apt-get install libjemalloc2 to measure as the image runs)'}`;
  }
  return mallocConf
    ? `jemalloc with MALLOC_CONF=${mallocConf} (the image's: ${JEMALLOC_ENV.MALLOC_CONF})`
    : `jemalloc (${JEMALLOC_ENV.MALLOC_CONF}), as the image`;
}

/**
 * kubectl as a user has it, built from the same Kubernetes module and version as the
 * harness's kube-apiserver (hack/build-kubectl.sh, cached), with snapcron installed as its
 * `kubectl-snapcron` plugin the way package.json's bin entry installs it.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kubeconfigPath } from './kube.ts';
import { runProgram, type Finished } from './processes.ts';
import { hackScriptOutput } from '../../dev/hack-script.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The kubectl binary (built on first use, cached in ~/.cache/snapcron; $SNAPCRON_KUBECTL wins). */
export const kubectlBinary = (): string => hackScriptOutput('hack/build-kubectl.sh');

/**
 * A directory holding `kubectl-snapcron`, as `npm install -g snapcron` puts it on PATH: the
 * command package.json's bin names, run from source (its dist/ file maps to src/, as
 * tsconfig.build.json compiles it) with the Node that runs the tests.
 */
export function pluginDir(): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  const target = pkg.bin['kubectl-snapcron'];
  if (!target) throw new Error('package.json has no kubectl-snapcron bin');
  const source = join(ROOT, target.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts'));
  if (!existsSync(source) || !readFileSync(source, 'utf8').startsWith('#!/usr/bin/env node'))
    throw new Error(`${target} does not come from an executable source file (${source})`);
  const dir = mkdtempSync(join(tmpdir(), 'snapcron-plugin-'));
  const plugin = join(dir, 'kubectl-snapcron');
  writeFileSync(plugin, `#!/bin/sh\nexec "${process.execPath}" "${source}" "$@"\n`);
  chmodSync(plugin, 0o755);
  return dir;
}

/** Runs kubectl with the plugin directory first on PATH and the test cluster's kubeconfig. */
export function runKubectl(
  args: string[],
  plugins: string,
  kubeconfig = kubeconfigPath(),
): Promise<Finished> {
  return runProgram(kubectlBinary(), args, {
    KUBECONFIG: kubeconfig,
    PATH: [plugins, dirname(process.execPath), process.env.PATH ?? ''].join(':'),
  });
}

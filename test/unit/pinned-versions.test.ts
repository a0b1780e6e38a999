/**
 * The versions the README names for what is built from Go modules are the build scripts'
 * defaults: when a script moves to another version, this fails until the README says so too.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8').replace(/\s+/g, ' ');

/** The default of `${NAME:-vX}` in a hack script. */
function scriptDefault(script: string, variable: string): string {
  const text = readFileSync(new URL(`hack/${script}`, root), 'utf8');
  const m = new RegExp(`\\$\\{${variable}:-(v[\\d.]+)\\}`).exec(text);
  if (!m?.[1]) throw new Error(`hack/${script} has no default for ${variable}`);
  return m[1];
}

describe('the README names the versions the build scripts build', () => {
  // [script, its variable, how the README names it: the version follows these words]
  const cases: [string, string, string][] = [
    ['build-control-plane.sh', 'SNAPCRON_K8S_VERSION', 'Kubernetes'],
    ['build-kubectl.sh', 'SNAPCRON_K8S_VERSION', 'Kubernetes'],
    ['build-node.sh', 'SNAPCRON_K8S_VERSION', 'Kubernetes'],
    ['build-control-plane.sh', 'SNAPCRON_ETCD_VERSION', 'etcd'],
    ['build-csi.sh', 'SNAPCRON_SNAPSHOTTER_VERSION', 'external-snapshotter'],
    ['snapshot-crds.sh', 'SNAPCRON_SNAPSHOTTER_VERSION', 'external-snapshotter'],
    ['build-csi.sh', 'SNAPCRON_PROVISIONER_VERSION', 'external-provisioner'],
    ['csi-proto.sh', 'SNAPCRON_CSI_SPEC_VERSION', 'CSI spec'],
    ['build-helm.sh', 'SNAPCRON_HELM_VERSION', 'helm'],
    ['build-promtool.sh', 'SNAPCRON_PROMETHEUS_VERSION', '`github.com/prometheus/prometheus/cmd/promtool`'],
    ['addon-crds.sh', 'SNAPCRON_PROMETHEUS_OPERATOR_VERSION', 'prometheus-operator'],
    ['addon-crds.sh', 'SNAPCRON_CERT_MANAGER_VERSION', 'cert-manager'],
    ['build-node.sh', 'SNAPCRON_CONTAINERD_VERSION', '**containerd**'],
  ];
  for (const [script, variable, name] of cases)
    it(`${name}: hack/${script}'s ${variable}`, () => {
      expect(readme).toContain(`${name} ${scriptDefault(script, variable)}`);
    });
});

describe('the Dockerfile is what the README says', () => {
  const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8');

  it('BASE defaults to debian:bookworm-slim', () => {
    expect(readme).toContain('BASE defaults to debian:bookworm-slim');
    expect(dockerfile).toMatch(/^ARG BASE=docker\.io\/library\/debian:bookworm-slim$/m);
  });

  it('the cacert build secret is only mounted, never copied into the image', () => {
    const lines = dockerfile.split('\n').filter((l) => l.includes('cacert'));
    expect(lines.some((l) => l.includes('--mount=type=secret,id=cacert'))).toBe(true);
    for (const l of lines) expect(l, l).not.toMatch(/^\s*(COPY|ADD)\b|cp .*cacert|ENV .*cacert/);
  });
});

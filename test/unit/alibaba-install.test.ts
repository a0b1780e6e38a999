/**
 * The Alibaba Cloud SDK's packages need no network at install time: of every `@alicloud/` and
 * `@darabonba/` package `npm ls` shows, only @alicloud/openapi-core has an install script
 * (`postinstall: npm run select-version`), and on Node 24 that script exits at once without
 * running npm (it installs an old TypeScript only on Node 10 and 12).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('the @alicloud packages at install time', () => {
  const paths = execFileSync('npm', ['ls', '--all', '--parseable'], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .filter((p) => /node_modules\/@(alicloud|darabonba)\//.test(p));

  it('only @alicloud/openapi-core has an install script', () => {
    expect(paths.length).toBeGreaterThan(5);
    const scripts = paths.flatMap((p) => {
      const pkg = JSON.parse(readFileSync(join(p, 'package.json'), 'utf8')) as {
        name: string;
        scripts?: Record<string, string>;
        gypfile?: boolean;
      };
      expect(pkg.gypfile, pkg.name).toBeUndefined();
      return ['preinstall', 'install', 'postinstall']
        .filter((k) => pkg.scripts?.[k] !== undefined)
        .map((k) => `${pkg.name} ${k}: ${pkg.scripts?.[k] ?? ''}`);
    });
    expect([...new Set(scripts)]).toEqual(['@alicloud/openapi-core postinstall: npm run select-version']);
  });

  it('that script does nothing on Node 24: no npm, no network', () => {
    const core = paths.find((p) => p.endsWith('node_modules/@alicloud/openapi-core')) as string;
    // PATH without npm: were the script to run npm install, it would fail.
    const r = spawnSync(process.execPath, [join(core, 'scripts/ts_version.js')], {
      encoding: 'utf8',
      env: { PATH: '/nonexistent', npm_config_offline: 'true' },
    });
    expect(process.versions.node.split('.')[0]).toBe('24');
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(/Installing/);
  });
});

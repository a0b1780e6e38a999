import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { crdPath, generate, generateValidator, outPath, validatorPath } from '../../hack/gen-types.ts';

describe('the CRD and the TypeScript types', () => {
  it('have not drifted (run npm run gen after changing the CRD)', () => {
    expect(readFileSync(outPath, 'utf8')).toBe(generate(readFileSync(crdPath, 'utf8')));
  });

  it("and the validator compiled from the CRD's schema have not drifted either", () => {
    expect(readFileSync(validatorPath, 'utf8')).toBe(generateValidator(readFileSync(crdPath, 'utf8')));
  });

  it('describe every field, so kubectl explain teaches the API', () => {
    const crd = parse(readFileSync(crdPath, 'utf8')) as {
      spec: { versions: { schema: { openAPIV3Schema: unknown } }[] };
    };
    const missing: string[] = [];
    const walk = (node: Record<string, unknown>, path: string): void => {
      if (path !== 'metadata' && path !== '' && typeof node.description !== 'string') missing.push(path);
      for (const [k, v] of Object.entries((node.properties as Record<string, Record<string, unknown>>) ?? {}))
        walk(v, path ? `${path}.${k}` : k);
      const items = node.items as Record<string, unknown> | undefined;
      if (items?.type === 'object') walk(items, `${path}[]`);
    };
    walk(crd.spec.versions[0]?.schema.openAPIV3Schema as Record<string, unknown>, '');
    expect(missing).toEqual([]);
  });
});

/** Reading the YAML/JSON files users hand to the CLI, with errors that name the file and line. */
import { readFileSync } from 'node:fs';
import { yaml } from '../yaml.ts';
import { UserError } from './errors.ts';

function readText(file: string): string {
  try {
    return file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${file}: no such file`);
    throw new UserError(`${file}: cannot read: ${(err as Error).message}`);
  }
}

/** Every object in a (multi-document) YAML or JSON file; `kind: List`-style items are flattened. */
export function readObjects(file: string): unknown[] {
  const text = readText(file);
  const objects: unknown[] = [];
  for (const doc of yaml().parseAllDocuments(text)) {
    const first = doc.errors[0];
    if (first) {
      const line = first.linePos?.[0];
      throw new UserError(
        `${file}${line ? `:${line.line}:${line.col}` : ''}: invalid YAML: ${first.message.split('\n')[0]}`,
      );
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    const items = (value as { items?: unknown }).items;
    if (
      Array.isArray(items) &&
      typeof (value as { kind?: unknown }).kind === 'string' &&
      /List$/.test((value as { kind: string }).kind)
    ) {
      objects.push(...(items as unknown[]));
    } else {
      objects.push(value);
    }
  }
  return objects;
}

/** Parses an RFC 3339 time given on the command line. */
export function parseTimeFlag(flag: string, value: string | undefined, fallback: Date): Date {
  if (value === undefined) return fallback;
  const t = new Date(value);
  if (
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value) ||
    Number.isNaN(t.getTime())
  ) {
    throw new UserError(`--${flag} "${value}" is not an RFC 3339 time: use e.g. 2026-03-29T01:30:00Z`, 2);
  }
  return t;
}

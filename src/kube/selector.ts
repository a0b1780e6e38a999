/** Kubernetes LabelSelector semantics, for matching PVCs from the informer cache. */
import type { LabelSelector } from '../api/types.generated.ts';

/** True when the labels satisfy the selector; an empty or absent selector matches everything. */
export function matchesSelector(
  labels: Record<string, string> | undefined,
  selector: LabelSelector | undefined,
): boolean {
  const have = labels ?? {};
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) {
    if (have[key] !== value) return false;
  }
  for (const req of selector?.matchExpressions ?? []) {
    const present = Object.hasOwn(have, req.key);
    const value = have[req.key];
    const values = req.values ?? [];
    switch (req.operator) {
      case 'In':
        if (!present || !values.includes(value as string)) return false;
        break;
      case 'NotIn':
        if (present && values.includes(value as string)) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
    }
  }
  return true;
}

/** The selector as a `labelSelector` query string, e.g. `app=web,tier in (db,cache)`. */
export function selectorString(selector: LabelSelector | undefined): string {
  const parts = Object.entries(selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const req of selector?.matchExpressions ?? []) {
    const values = `(${(req.values ?? []).join(',')})`;
    if (req.operator === 'In') parts.push(`${req.key} in ${values}`);
    else if (req.operator === 'NotIn') parts.push(`${req.key} notin ${values}`);
    else if (req.operator === 'Exists') parts.push(req.key);
    else parts.push(`!${req.key}`);
  }
  return parts.join(',');
}

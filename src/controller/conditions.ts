/** metav1.Condition bookkeeping: a condition's lastTransitionTime moves only when its status changes. */
import type { Condition } from '../api/types.generated.ts';

export type ConditionInput = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

export function setConditions(
  existing: Condition[] | undefined,
  updates: ConditionInput[],
  now: Date,
  generation: number | undefined,
): Condition[] {
  const out = [...(existing ?? [])];
  for (const u of updates) {
    const i = out.findIndex((c) => c.type === u.type);
    const prev = i >= 0 ? out[i] : undefined;
    const next: Condition = {
      ...u,
      lastTransitionTime:
        prev && prev.status === u.status
          ? prev.lastTransitionTime
          : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    };
    if (i >= 0) out[i] = next;
    else out.push(next);
  }
  return out;
}

export const findCondition = (conditions: Condition[] | undefined, type: string): Condition | undefined =>
  conditions?.find((c) => c.type === type);

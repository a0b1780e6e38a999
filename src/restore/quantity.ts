/** Kubernetes resource quantities (`20Gi`, `500M`, `1.5Ti`) to bytes, for restore-size checks. */
const SUFFIX: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

export function parseQuantity(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a storage quantity: use e.g. 20Gi or 500M`);
  return Number(m[1]) * (SUFFIX[m[2] ?? ''] ?? 1);
}

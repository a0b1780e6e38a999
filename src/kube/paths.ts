/** `/api/v1/...` or `/apis/<group>/<version>/...`, namespaced when `namespace` is given. */
export function collectionPath(
  r: { group?: string | undefined; version: string; plural: string },
  namespace?: string,
): string {
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  return `${base}${namespace ? `/namespaces/${encodeURIComponent(namespace)}` : ''}/${r.plural}`;
}

/** A core (`/api/v1`) collection. */
export const coreCollection = (plural: string, namespace?: string): string =>
  collectionPath({ version: 'v1', plural }, namespace);

/** One object of a collection. */
export const objectPath = (collection: string, name: string): string =>
  `${collection}/${encodeURIComponent(name)}`;

export const LEASES = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' } as const;

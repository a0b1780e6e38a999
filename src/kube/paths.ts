/** `/api/v1/...` or `/apis/<group>/<version>/...`, namespaced when `namespace` is given. */
export function collectionPath(
  r: { group?: string | undefined; version: string; plural: string },
  namespace?: string,
): string {
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  return `${base}${namespace ? `/namespaces/${encodeURIComponent(namespace)}` : ''}/${r.plural}`;
}

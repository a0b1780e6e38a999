/** kube-apiserver's own request counts, read from its /metrics as the admin. */
import { apiGet } from './kube.ts';

/**
 * Finished requests (apiserver_request_total) by verb for one resource, subresources
 * excluded, summed over codes, scopes and groups: e.g. ('volumesnapshots', 'LIST').
 */
export async function requestCount(resource: string, verb: string): Promise<number> {
  let total = 0;
  for (const line of (await apiGet('/metrics', 'text/plain')).split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    if (!line.includes(`resource="${resource}"`) || !line.includes(`verb="${verb}"`)) continue;
    if (!line.includes('subresource=""')) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

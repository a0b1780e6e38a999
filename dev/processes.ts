/** Small process helpers shared by the dev scripts (hack/) and the tests. */
import { readdirSync, readFileSync } from 'node:fs';

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The processes of this machine whose command line mentions one of `needles` (a directory they use): pid and argv. */
export function processesMentioning(needles: string[]): { pid: number; args: string[] }[] {
  const found: { pid: number; args: string[] }[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let args: string[];
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      continue; // gone meanwhile
    }
    if (args.some((a) => needles.some((n) => a.includes(n)))) found.push({ pid: Number(pid), args });
  }
  return found;
}

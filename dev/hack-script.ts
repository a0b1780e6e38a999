/**
 * The hack/ build scripts print what they built (a binary, a folder, an image name) as their
 * last line of stdout, with their progress on stderr. One runner for every caller, asked once
 * per process and script.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const answers = new Map<string, string>();

/** Runs `hack/…` (path from the repository root) once and returns its last line of output. */
export function hackScriptOutput(script: string): string {
  let answer = answers.get(script);
  if (answer === undefined) {
    answer =
      execFileSync('bash', [join(ROOT, script)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
        .trim()
        .split('\n')
        .at(-1) ?? '';
    if (!answer) throw new Error(`${script} printed nothing to use`);
    answers.set(script, answer);
  }
  return answer;
}

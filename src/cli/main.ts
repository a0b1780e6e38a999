/** snapcron's command line: one entry point, a subcommand per job. */
import { controllerUsage, runController, runTick, tickUsage } from './cluster-commands.ts';
import { UserError } from './errors.ts';
import { restoreUsage, runRestore } from './restore.ts';
import { nextUsage, runNext } from './next.ts';
import { planUsage, runPlan } from './plan.ts';
import { runValidate, validateUsage } from './validate.ts';

const USAGE = `snapcron: scheduled CSI VolumeSnapshots for Kubernetes

Offline (no cluster needed):
  ${nextUsage}
  ${validateUsage}
  ${planUsage}

With a cluster (KUBECONFIG or in-cluster):
  ${controllerUsage}
  ${tickUsage}
  ${restoreUsage}

Add --debug to any command for stack traces.`;

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const [command, ...rest] = args;
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  const err = (line: string): void => void process.stderr.write(`${line}\n`);
  try {
    switch (command) {
      case 'next':
        return runNext(rest, new Date(), out);
      case 'validate':
        return runValidate(rest, out, err);
      case 'plan':
        return runPlan(rest, new Date(), out);
      case 'controller':
        return await runController(rest);
      case 'tick':
        return await runTick(rest, out);
      case 'restore':
        return await runRestore(rest, new Date(), out);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        err(`snapcron: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (debug) err(e instanceof Error ? (e.stack ?? e.message) : String(e));
    else if (e instanceof UserError) err(`snapcron ${command}: ${e.message}`);
    else if (e instanceof Error && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))
      err(`snapcron ${command}: ${e.message}`);
    else
      err(
        `snapcron ${command}: ${e instanceof Error ? e.message : String(e)} (rerun with --debug for details)`,
      );
    return e instanceof UserError ? e.exitCode : e instanceof Error && 'code' in e ? 2 : 1;
  }
}

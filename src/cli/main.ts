/** snapcron's command line: one entry point, a subcommand per job, each with its option table. */
import { controllerCommand, runController, runTick, tickCommand } from './cluster-commands.ts';
import { UserError } from './errors.ts';
import { nextCommand, runNext } from './next.ts';
import { HelpRequested, helpText, synopsis, wrap, type Command } from './options.ts';
import { planCommand, runPlan } from './plan.ts';
import { reportCommand, runReport } from './report.ts';
import { restoreCommand, runRestore } from './restore.ts';
import { runValidate, validateCommand } from './validate.ts';
import { runCommand, runRun } from './run.ts';

type Print = (line: string) => void;

/** Every subcommand: its option table (what it parses and what `--help` shows) and how it runs. */
export const subcommands: readonly {
  command: Command;
  cluster: boolean;
  run: (args: string[], out: Print, err: Print) => number | Promise<number>;
}[] = [
  { command: nextCommand, cluster: false, run: (args, out) => runNext(args, new Date(), out) },
  { command: validateCommand, cluster: false, run: (args, out, err) => runValidate(args, out, err) },
  { command: planCommand, cluster: false, run: (args, out) => runPlan(args, new Date(), out) },
  { command: controllerCommand, cluster: true, run: (args) => runController(args) },
  { command: tickCommand, cluster: true, run: (args, out) => runTick(args, out) },
  { command: runCommand, cluster: true, run: (args, out) => runRun(args, out) },
  { command: restoreCommand, cluster: true, run: (args, out) => runRestore(args, new Date(), out) },
  { command: reportCommand, cluster: true, run: (args, out, err) => runReport(args, new Date(), out, err) },
];

const listing = (cluster: boolean): string[] =>
  subcommands
    .filter((s) => s.cluster === cluster)
    .flatMap(({ command }) => [`  ${synopsis(command)}`, `      ${wrap(command.summary, 6)}`]);

const USAGE = [
  'snapcron: scheduled CSI VolumeSnapshots for Kubernetes',
  '',
  'Offline (no cluster needed):',
  ...listing(false),
  '',
  'With a cluster (KUBECONFIG or in-cluster):',
  ...listing(true),
  '',
  "'snapcron <command> --help' (or 'snapcron help <command>') lists a command's options.",
  'Add --debug to any command for stack traces.',
].join('\n');

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const [command, ...rest] = args;
  const out: Print = (line) => void process.stdout.write(`${line}\n`);
  const err: Print = (line) => void process.stderr.write(`${line}\n`);
  const find = (name: string | undefined) => subcommands.find((s) => s.command.name === name);
  try {
    switch (command) {
      case undefined:
        out(USAGE);
        return 2;
      case 'help':
      case '--help':
      case '-h': {
        const [topic] = rest;
        if (topic === undefined) {
          out(USAGE);
          return 0;
        }
        const sub = find(topic);
        if (!sub) {
          err(`snapcron help: unknown command "${topic}"\n\n${USAGE}`);
          return 2;
        }
        out(helpText(sub.command));
        return 0;
      }
      default: {
        const sub = find(command);
        if (!sub) {
          err(`snapcron: unknown command "${command}"\n\n${USAGE}`);
          return 2;
        }
        return await sub.run(rest, out, err);
      }
    }
  } catch (e) {
    if (e instanceof HelpRequested) {
      out(helpText(e.command));
      return 0;
    }
    if (debug) err(e instanceof Error ? (e.stack ?? e.message) : String(e));
    else if (e instanceof UserError) err(`snapcron ${command}: ${e.message}`);
    else
      err(
        `snapcron ${command}: ${e instanceof Error ? e.message : String(e)} (rerun with --debug for details)`,
      );
    return e instanceof UserError ? e.exitCode : 1; // usage errors are UserErrors with exit code 2
  }
}

/**
 * One table per subcommand: node:util parseArgs reads its options and `--help` prints them,
 * so the usage text cannot drift from what the parser accepts.
 */
import { parseArgs, type ParseArgsOptionDescriptor } from 'node:util';
import { UserError } from './errors.ts';

/** A parseArgs option plus what `--help` shows about it. */
export type Option = ParseArgsOptionDescriptor & {
  /** One line for `--help`. */
  description: string;
  /** The placeholder for a string option's value, e.g. `NS`. */
  value?: string;
  /** Shown as the default when there is no fixed `default` (computed at start, or implied). */
  shownDefault?: string;
  /** Must be given: usage shows it outside brackets and parsing refuses its absence. */
  required?: boolean;
};

export type Options = Record<string, Option>;

export interface Command<O extends Options = Options> {
  name: string;
  /** A sentence for `snapcron --help` and the head of `snapcron <name> --help`. */
  summary: string;
  /** Positional arguments as usage shows them, e.g. `"<cron>"`; none are accepted when absent. */
  positionals?: string;
  options: O;
}

const HELP = {
  help: { type: 'boolean', short: 'h', description: 'show this help and exit' },
} as const satisfies Options;

/** A subcommand's table, with `-h, --help` added. */
export function defineCommand<const O extends Options>(command: Command<O>): Command<O & typeof HELP> {
  return { ...command, options: { ...command.options, ...HELP } };
}

type Parsed<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: true }>
>;
type ParsedValues<O extends Options> = Parsed<O>['values'];
/** parseArgs's values, with `required` options known to be present. */
export type Values<O extends Options> = ParsedValues<O> & {
  [K in keyof O as O[K] extends { required: true } ? K : never]-?: K extends keyof ParsedValues<O>
    ? NonNullable<ParsedValues<O>[K]>
    : never;
};

/** Thrown by {@link parseCommand} on `--help`/`-h`: main prints {@link helpText} and exits 0. */
export class HelpRequested extends Error {
  readonly command: Command;
  constructor(command: Command) {
    super(`snapcron ${command.name} --help`);
    this.command = command;
  }
}

const flag = (name: string, option: Option): string =>
  option.type === 'string' ? `--${name} ${option.value ?? 'VALUE'}` : `--${name}`;

/** Wraps text at spaces to 100 columns, continuing lines at `indent`. */
export function wrap(text: string, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && indent + line.length + 1 + word.length > 100) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** `snapcron plan -f FILE --snapshots FILE [options]`: positionals and required options. */
export function synopsis(command: Command): string {
  const required = Object.entries(command.options)
    .filter(([, o]) => o.required)
    .map(([name, o]) => {
      const text = o.short
        ? `-${o.short}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`
        : flag(name, o);
      return o.multiple ? `${text} ...` : text;
    });
  return ['snapcron', command.name, command.positionals, ...required, '[options]']
    .filter((part) => part !== undefined)
    .join(' ');
}

/** The full `--help` text: synopsis, summary, and every option of the table. */
export function helpText(command: Command): string {
  const rows = Object.entries(command.options).map(([name, o]) => {
    const left = `${o.short ? `-${o.short}, ` : '    '}${flag(name, o)}`;
    const shown = o.type === 'string' && o.default !== undefined ? String(o.default) : o.shownDefault;
    const notes = [
      o.required ? 'required' : undefined,
      o.multiple ? 'repeatable' : undefined,
      shown === undefined ? undefined : `default: ${shown}`,
    ].filter((n) => n !== undefined);
    return [left, `${o.description}${notes.length ? ` (${notes.join('; ')})` : ''}`] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length));
  return [
    `Usage: ${synopsis(command)}`,
    '',
    wrap(command.summary, 0),
    '',
    'Options:',
    ...rows.map(([left, right]) => `  ${left.padEnd(width)}  ${wrap(right, width + 4)}`),
  ].join('\n');
}

/** A usage error (exit 2) naming the command and pointing to its `--help`. */
export const usageError = (command: Command, problem: string): UserError =>
  new UserError(`${problem}; usage: ${synopsis(command)} (see snapcron ${command.name} --help)`, 2);

/**
 * Parses a subcommand's arguments against its table. `--help`/`-h` anywhere (before `--`)
 * wins and throws {@link HelpRequested}; unknown options, bad values, unexpected positionals
 * and missing required options are usage errors (exit 2).
 */
export function parseCommand<O extends Options>(
  command: Command<O>,
  args: string[],
): { values: Values<O>; positionals: string[] } {
  const { tokens } = parseArgs({
    args,
    options: command.options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const options = tokens.filter((t) => t.kind === 'option');
  if (options.some((t) => t.name === 'help')) throw new HelpRequested(command);
  const unknown = options.find((t) => !Object.hasOwn(command.options, t.name));
  if (unknown) {
    throw new UserError(`unknown option '${unknown.rawName}': see snapcron ${command.name} --help`, 2);
  }

  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ args, options: command.options, strict: true, allowPositionals: true });
  } catch (err) {
    if (err instanceof Error && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      throw usageError(command, (err.message.split('\n')[0] ?? '').replace(/\.$/, ''));
    }
    throw err;
  }
  const { values, positionals } = parsed;
  if (command.positionals === undefined && positionals.length > 0) {
    throw usageError(command, `unexpected argument '${positionals[0] ?? ''}'`);
  }
  for (const [name, o] of Object.entries(command.options)) {
    if (o.required && (values as Record<string, unknown>)[name] === undefined) {
      throw usageError(command, `missing ${o.short ? `-${o.short}` : `--${name}`}`);
    }
  }
  return { values: values as Values<O>, positionals };
}

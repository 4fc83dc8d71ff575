/**
 * What a CLI command is, and the pieces every command shares: output streams, exit codes, usage
 * errors and argument parsing. A new command (detect, encode, recognize, verify, eval) is one module
 * exporting a {@link Command}, added to the table in main.ts.
 */
import { parseArgs } from 'node:util';
import { FaceError } from '../errors';

/** Exit codes: success, a runtime or model failure, a mistake on the command line. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Where a command writes and what it reads from its environment (injected, so tests can run main()). */
export interface CliIO {
  /** Writes a line (or several) to stdout. */
  out(text: string): void;
  /** Writes a line (or several) to stderr. */
  err(text: string): void;
  env: NodeJS.ProcessEnv;
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** For --help: the value's placeholder (string options) and what the option does. */
  valueName?: string;
  description: string;
}

export interface ParsedArgs {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
}

export interface Command {
  name: string;
  /** One line, for the command list. */
  summary: string;
  /** Synopsis lines, e.g. 'facesight convert <model> <weights> -o <out.onnx>'. */
  usage: readonly string[];
  /** What it does, for `facesight <command> --help`. */
  description: string;
  options: Readonly<Record<string, OptionSpec>>;
  /** Runs the command; resolves to the exit code. Throw UsageError for command-line mistakes. */
  run(args: ParsedArgs, io: CliIO): Promise<number>;
}

/** A mistake on the command line: exit code 2. A FaceError with code E_INPUT. */
export class UsageError extends FaceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_INPUT', message, options);
  }

  /** The ordinary prototype check (FaceError's own hasInstance accepts every FaceError). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(UsageError, value);
  }
}

/**
 * Runs `fn`, turning the FaceErrors E_INPUT it throws (an unknown model name, an unsupported
 * conversion) into UsageErrors: for the steps that interpret the command line.
 */
export function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof FaceError && (error as FaceError).code === 'E_INPUT' && !(error instanceof UsageError)) {
      throw new UsageError((error as Error).message, { cause: error });
    }
    throw error;
  }
}

/** Parses a command's arguments (plus -h/--help); unknown options and bad values are UsageErrors. */
export function parseCommandArgs(command: Command, argv: readonly string[]): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, spec] of Object.entries(command.options)) options[name] = { type: spec.type, ...(spec.short ? { short: spec.short } : {}) };
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
    return { values: values as ParsedArgs['values'], positionals };
  } catch (error) {
    const message = ((error as Error).message ?? String(error)).replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(`${message} (see 'facesight ${command.name} --help')`, { cause: error });
  }
}

/** `facesight <command> --help`. */
export function commandHelp(command: Command): string {
  const lines = ['Usage:', ...command.usage.map((u) => `  ${u}`), '', command.description, '', 'Options:'];
  const rows: [string, string][] = Object.entries(command.options).map(([name, spec]) => [
    `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.type === 'string' ? ` <${spec.valueName ?? 'value'}>` : ''}`,
    spec.description,
  ]);
  rows.push(['-h, --help', 'show this help']);
  const width = Math.max(...rows.map(([a]) => a.length));
  for (const [a, b] of rows) lines.push(`  ${a.padEnd(width)}  ${b}`);
  return lines.join('\n');
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n');
}

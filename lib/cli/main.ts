#!/usr/bin/env node
/**
 * The `facesight` command. Each command is a {@link Command} in the table below; main() parses,
 * dispatches and turns errors into one line on stderr and an exit code:
 *   0 success, 1 a runtime or model error (for detect / recognize / encode: any input image that
 *   failed, the others being done), 2 a command-line mistake (unknown command or option, missing
 *   argument, unknown model, unsupported conversion), 3 verify: the two faces are different people.
 * FACESIGHT_DEBUG=1 prints the error's stack and causes as well.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from '../binding';
import { FaceError } from '../errors';
import { commandHelp, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, parseCommandArgs, table, UsageError, type CliIO, type Command } from './command';
import { convertCommand } from './convert';
import { detectCommand } from './detect';
import { encodeCommand } from './encode';
import { evalCommand } from './eval';
import { modelsCommand } from './models';
import { recognizeCommand } from './recognize';
import { verifyCommand } from './verify';

/** Every command, in the order `facesight --help` lists them. */
export const COMMANDS: readonly Command[] = [detectCommand, encodeCommand, recognizeCommand, verifyCommand, modelsCommand, convertCommand, evalCommand];

function version(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function globalHelp(): string {
  return [
    'Usage: facesight <command> [options]',
    '',
    'Face detection and recognition from the command line.',
    '',
    'Commands:',
    table(COMMANDS.map((c) => [`  ${c.name}`, c.summary])),
    '',
    "Models are named as 'name' or 'name=path' (the path of its weights), e.g. retinaface-mnet025=weights/mobilenet0.25_Final.pth;",
    "a descriptor file of your own works in place of a name: my-model.json=my-model.onnx.",
    '',
    'Examples:',
    '  facesight detect photos/ --annotate annotated/',
    '  facesight encode gallery/ --db faces.npy        (gallery/Name/*.jpg, or gallery/Name_1.jpg)',
    '  facesight recognize group.jpg --db faces.npy --annotate group-named.jpg',
    '  facesight verify a.jpg b.jpg',
    '',
    "Run 'facesight <command> --help' for a command's options.",
    'Exit codes: 0 success; 1 an error (including any input image that could not be read: the others are still',
    'processed and reported); 2 a usage error; 3 verify: the two faces are not the same person.',
  ].join('\n');
}

/** Runs the command line `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: readonly string[], io: CliIO = processIO()): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined) {
      io.err(globalHelp());
      return EXIT_USAGE;
    }
    if (first === '--help' || first === '-h' || first === 'help') {
      const topic = rest[0];
      if (topic === undefined) {
        io.out(globalHelp());
        return EXIT_OK;
      }
      const command = COMMANDS.find((c) => c.name === topic);
      if (!command) throw new UsageError(`unknown command '${topic}' (commands: ${COMMANDS.map((c) => c.name).join(', ')})`);
      io.out(commandHelp(command));
      return EXIT_OK;
    }
    if (first === '--version' || first === '-v') {
      io.out(version());
      return EXIT_OK;
    }
    const command = COMMANDS.find((c) => c.name === first);
    if (!command) {
      const what = first.startsWith('-') ? `unknown option '${first}'` : `unknown command '${first}'`;
      throw new UsageError(`${what} (commands: ${COMMANDS.map((c) => c.name).join(', ')}; see 'facesight --help')`);
    }
    const args = parseCommandArgs(command, rest);
    if (args.values.help) {
      io.out(commandHelp(command));
      return EXIT_OK;
    }
    return await command.run(args, io);
  } catch (error) {
    return report(error, io);
  }
}

/** One line on stderr (plus the stack with FACESIGHT_DEBUG=1); the exit code for the error. */
function report(error: unknown, io: CliIO): number {
  const message = error instanceof Error ? error.message : String(error);
  io.err(`facesight: ${message.replace(/\s*\n\s*/g, ' ')}`);
  if (io.env.FACESIGHT_DEBUG === '1') {
    let e: unknown = error;
    for (let depth = 0; e !== undefined && depth < 5; depth++) {
      if (e instanceof FaceError) io.err(`code: ${(e as FaceError).code}`);
      io.err(e instanceof Error ? (e.stack ?? e.message) : String(e));
      e = e instanceof Error ? e.cause : undefined;
      if (e !== undefined) io.err('caused by:');
    }
  }
  return error instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
}

function processIO(): CliIO {
  return {
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
    env: process.env,
  };
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      // main() reports its own errors; this is a bug in the reporting itself.
      process.stderr.write(`facesight: internal error: ${String(error)}\n`);
      process.exitCode = EXIT_FAILURE;
    },
  );
}

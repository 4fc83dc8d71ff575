/**
 * `facesight convert <model> <weights> -o out.onnx`: published weights to an ONNX model that
 * facesight (or onnxruntime) loads.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { converterFor } from '../convert/index';
import { FaceError } from '../errors';
import { locateWeights, resolveModelSpec } from '../models/registry';
import { asUsage, EXIT_OK, UsageError, type Command } from './command';

export const convertCommand: Command = {
  name: 'convert',
  summary: 'convert published weights (a PyTorch checkpoint) to an ONNX model',
  usage: ['facesight convert <model> <weights> -o <out.onnx>', 'facesight convert <model>=<weights> -o <out.onnx>'],
  description:
    "Reads <weights> (a torch.save checkpoint as the model's publisher distributes it), checks that it holds\n" +
    "exactly the model's weights, and writes the ONNX model to <out.onnx>. Without <weights>, the model's test\n" +
    "weights under the data folder (FACESIGHT_DATA) are used when present. 'facesight models' lists the models.",
  options: {
    output: { type: 'string', short: 'o', valueName: 'out.onnx', description: 'the ONNX file to write (replaced if it exists)' },
  },
  async run({ positionals, values }, io) {
    if (positionals.length === 0) throw new UsageError("missing the model to convert (see 'facesight convert --help')");
    if (positionals.length > 2) throw new UsageError(`too many arguments: ${positionals.slice(2).map((p) => `'${p}'`).join(' ')} (see 'facesight convert --help')`);
    const output = values.output;
    if (typeof output !== 'string' || output === '') throw new UsageError("missing -o/--output <out.onnx> (see 'facesight convert --help')");

    const spec = asUsage(() => resolveModelSpec(positionals[0], io.env));
    if (spec.weightsPath !== undefined && positionals.length === 2) {
      throw new UsageError(`the weights are given twice: '${positionals[0]}' and '${positionals[1]}'`);
    }
    const convert = asUsage(() => converterFor(spec.descriptor));
    let weights = positionals[1] ?? spec.weightsPath;
    if (weights === undefined) {
      const at = locateWeights(spec.descriptor, undefined, io.env);
      if (!at.present) {
        throw new UsageError(`missing the weights of '${spec.descriptor.name}': give them as 'facesight convert ${spec.descriptor.name} <weights> -o ${output}'${at.path ? ` (none at ${at.path})` : ''}`);
      }
      weights = at.path!;
    }

    const bytes = await convert(weights);
    await writeAtomically(path.resolve(output), bytes);
    const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
    io.out(`wrote ${output}: ${spec.descriptor.name}, ${bytes.length} bytes, sha256 ${sha256}`);
    return EXIT_OK;
  },
};

/** Writes next to the target and renames, so that a failed write never leaves half a model behind. */
async function writeAtomically(file: string, bytes: Uint8Array): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    await fs.writeFile(temporary, bytes);
    await fs.rename(temporary, file);
  } catch (cause) {
    await fs.rm(temporary, { force: true }).catch(() => undefined);
    throw new FaceError('E_INPUT', `Cannot write ${file}: ${(cause as Error).message}`, { cause });
  }
}

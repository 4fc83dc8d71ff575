/**
 * `facesight models`: every known model, its role, where its weights were published, and whether
 * weights for it are present on this machine.
 */
import * as path from 'node:path';
import type { ModelDescriptor } from '../models/descriptor';
import { dataDir, knownModels, locateWeights, resolveModelSpec, type WeightsLocation } from '../models/registry';
import { asUsage, EXIT_OK, table, type Command } from './command';

function sourceOf(d: ModelDescriptor): string {
  const s = d.weights.source;
  return `${s.publisher}: ${path.posix.basename(s.file)}`;
}

function weightsCell(d: ModelDescriptor, at: WeightsLocation): string {
  if (at.present) return `yes: ${at.path}${at.origin === 'data' ? ' (test data)' : at.origin === 'package' ? ` (shipped in ${d.weights.package})` : ''}`;
  if (at.origin === 'user') return `no: ${at.path} does not exist`;
  if (at.origin === 'package') return at.path ? `no: ${at.path} does not exist (reinstall ${d.weights.package})` : `no (install ${d.weights.package})`;
  if (at.origin === 'data') return 'no (not in the data folder)';
  return d.weights.shipped ? 'shipped' : 'no (bring your own: name=path)';
}

export const modelsCommand: Command = {
  name: 'models',
  summary: 'list the known models, where their weights come from and whether they are here',
  usage: ['facesight models [<model>[=<weights>] ...] [--json]'],
  description:
    'Lists every model facesight knows (the descriptors in its models/ folder and in the folders named by\n' +
    'FACESIGHT_MODELS), or the models named. WEIGHTS says whether a weights file is present: the path\n' +
    "given as <model>=<weights>, else the model's test weights under the data folder (FACESIGHT_DATA).",
  options: {
    json: { type: 'boolean', description: 'print JSON instead of a table' },
  },
  async run({ positionals, values }, io) {
    const chosen = positionals.length === 0
      ? knownModels(io.env).map((descriptor) => ({ descriptor, weightsPath: undefined as string | undefined }))
      : positionals.map((spec) => asUsage(() => resolveModelSpec(spec, io.env)));
    const rows = chosen.map(({ descriptor, weightsPath }) => ({ descriptor, at: locateWeights(descriptor, weightsPath, io.env) }));
    if (values.json) {
      const json = rows.map(({ descriptor: d, at }) => ({
        name: d.name,
        role: d.role,
        architecture: d.architecture,
        source: d.weights.source,
        format: d.weights.format,
        converter: d.weights.converter,
        shipped: d.weights.shipped,
        weights: at,
      }));
      io.out(JSON.stringify(json, null, 2));
      return EXIT_OK;
    }
    io.out(table([['NAME', 'ROLE', 'SOURCE', 'WEIGHTS HERE'], ...rows.map(({ descriptor: d, at }) => [d.name, d.role, sourceOf(d), weightsCell(d, at)])]));
    io.out(`(data folder: ${dataDir(io.env)}${io.env.FACESIGHT_DATA ? '' : '; set FACESIGHT_DATA to change it'})`);
    return EXIT_OK;
  },
};

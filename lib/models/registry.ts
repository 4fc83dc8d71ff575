/**
 * The known models: the descriptors in the package's `models/` folder, plus those in the folders
 * listed in FACESIGHT_MODELS (separated like PATH). Models are named on the command line and in the
 * API as `name` or `name=path`, where path is the model's weights (a checkpoint to convert, or an
 * ONNX file); `name` may also be a descriptor file of one's own (`my-model.json=my-model.onnx`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from '../binding';
import { FaceError, FaceRangeError, invalidRange, invalidType } from '../errors';
import { parseDescriptor, type ModelDescriptor } from './descriptor';

export interface ModelSpec {
  descriptor: ModelDescriptor;
  /** The weights path given after '=', resolved against the working directory. */
  weightsPath?: string;
  /** Where the descriptor was read from. */
  descriptorPath: string;
}

export interface WeightsLocation {
  /** Whether a weights file exists at `path`. */
  present: boolean;
  /** The file looked at, when there was one to look at. */
  path?: string;
  /**
   * 'user': the path given; 'package': shipped weights (weights.file inside the installed npm package
   * weights.package; `path` is absent when that package is not installed); 'data': weights.dataPath
   * under the data folder; 'none': nowhere to look.
   */
  origin: 'user' | 'package' | 'data' | 'none';
}

/** The package's own descriptor folder. */
export const modelsDir = path.join(packageRoot, 'models');

/** The evaluation-data folder: FACESIGHT_DATA, by default `../shared/data` beside the package. */
export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.FACESIGHT_DATA ? path.resolve(env.FACESIGHT_DATA) : path.resolve(packageRoot, '../shared/data');
}

/** Reads and validates one descriptor file. */
export function loadDescriptorFile(file: string, label = file): ModelDescriptor {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (cause) {
    throw new FaceError('E_MODEL', `Cannot read model descriptor ${label}: ${(cause as Error).message}`, { cause });
  }
  return parseDescriptor(text, label);
}

interface Entry {
  descriptor: ModelDescriptor;
  file: string;
}

function descriptorFolders(env: NodeJS.ProcessEnv): { dir: string; label: (file: string) => string }[] {
  const folders = [{ dir: modelsDir, label: (file: string) => `models/${path.basename(file)}` }];
  for (const dir of (env.FACESIGHT_MODELS ?? '').split(path.delimiter)) {
    if (dir.trim()) folders.push({ dir: path.resolve(dir), label: (file: string) => file });
  }
  return folders;
}

function entries(env: NodeJS.ProcessEnv): Entry[] {
  const found = new Map<string, Entry>();
  for (const { dir, label } of descriptorFolders(env)) {
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
    } catch (cause) {
      if (dir === modelsDir) throw new FaceError('E_MODEL', `Cannot read facesight's model descriptors in ${dir}: ${(cause as Error).message}`, { cause });
      throw new FaceError('E_MODEL', `Cannot read the model descriptor folder ${dir} (from FACESIGHT_MODELS): ${(cause as Error).message}`, { cause });
    }
    for (const n of names) {
      const file = path.join(dir, n);
      const descriptor = loadDescriptorFile(file, label(file));
      if (`${descriptor.name}.json` !== n) {
        throw new FaceError('E_MODEL', `${label(file)} describes '${descriptor.name}': a descriptor's file name must be its name plus .json`);
      }
      const previous = found.get(descriptor.name);
      if (previous) throw new FaceError('E_MODEL', `Model '${descriptor.name}' is described twice: ${previous.file} and ${file}`);
      found.set(descriptor.name, { descriptor, file });
    }
  }
  return [...found.values()].sort((a, b) => a.descriptor.name.localeCompare(b.descriptor.name));
}

/**
 * Every known model's descriptor, by name. Descriptors are read and validated on each call (they are
 * small), so a broken one is reported as E_MODEL here.
 */
export function knownModels(env: NodeJS.ProcessEnv = process.env): ModelDescriptor[] {
  return entries(env).map((e) => e.descriptor);
}

/**
 * Resolves `name`, `name=path`, `descriptor.json` or `descriptor.json=path`.
 *
 * @throws FaceError E_INPUT (a TypeError or RangeError) for a malformed spec or an unknown name, with
 *   the known names; E_MODEL for a broken descriptor
 */
export function resolveModelSpec(spec: string, env: NodeJS.ProcessEnv = process.env): ModelSpec {
  if (typeof spec !== 'string') throw invalidType("a model name or 'name=path'", 'the model', spec);
  const at = spec.indexOf('=');
  const name = (at < 0 ? spec : spec.slice(0, at)).trim();
  const weights = at < 0 ? undefined : spec.slice(at + 1);
  if (name === '') throw invalidRange("a model name or 'name=path'", 'the model', spec);
  if (weights !== undefined && weights.trim() === '') throw invalidRange(`a weights path after '${name}='`, 'the model', spec);
  const weightsPath = weights === undefined ? undefined : path.resolve(weights);

  if (name.toLowerCase().endsWith('.json') || name.includes('/') || name.includes(path.sep)) {
    const file = path.resolve(name);
    if (!fs.existsSync(file)) throw new FaceRangeError(`Expected an existing descriptor file for the model but received '${name}' (no such file: ${file})`);
    return { descriptor: loadDescriptorFile(file, name), descriptorPath: file, ...(weightsPath ? { weightsPath } : {}) };
  }
  const all = entries(env);
  const entry = all.find((e) => e.descriptor.name === name);
  if (!entry) {
    const known = all.map((e) => e.descriptor.name).join(', ');
    throw invalidRange(`a known model (${known}) or a descriptor file (.json)`, 'the model', name);
  }
  return { descriptor: entry.descriptor, descriptorPath: entry.file, ...(weightsPath ? { weightsPath } : {}) };
}

/**
 * The folder of an installed npm package (found from this module, as `require` would), or undefined
 * when it is not installed.
 */
export function packageDir(name: string): string | undefined {
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch {
    return undefined;
  }
}

/**
 * Where a model's weights are on this machine: the user's path when given, else, for shipped
 * weights, `weights.file` inside the installed `weights.package`, else the descriptor's
 * `weights.dataPath` under the data folder (test and evaluation weights), else nowhere.
 */
export function locateWeights(descriptor: ModelDescriptor, userPath?: string, env: NodeJS.ProcessEnv = process.env): WeightsLocation {
  if (userPath !== undefined) {
    const file = path.resolve(userPath);
    return { present: isFile(file), path: file, origin: 'user' };
  }
  const { shipped, package: pkg, file } = descriptor.weights;
  if (shipped && pkg && file) {
    const dir = packageDir(pkg);
    if (dir === undefined) return { present: false, origin: 'package' };
    const at = path.join(dir, ...file.split('/'));
    return { present: isFile(at), path: at, origin: 'package' };
  }
  if (descriptor.weights.dataPath) {
    const file = path.join(dataDir(env), ...descriptor.weights.dataPath.split('/'));
    return { present: isFile(file), path: file, origin: 'data' };
  }
  return { present: false, origin: 'none' };
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

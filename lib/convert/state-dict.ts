/**
 * Matching a checkpoint's state dict onto a graph's weights, shared by the converters: every weight
 * the graph consumes must be present with its exact shape and a floating-point dtype, and nothing
 * else may be left over (except what the model declares as training-only), so that no weight is
 * ever left random or silently dropped. Failures are FaceError E_MODEL naming the key.
 */
import * as fs from 'node:fs/promises';
import { FaceError, invalidType } from '../errors';
import type { WeightTensor } from '../graphs/layers';
import type { ModelOptions } from '../onnx/builder';
import { readTorchCheckpoint, toFloat32, type TorchDType, type TorchTensor } from './torch-checkpoint';

export interface StateDictSpec {
  /** The model, for messages (e.g. 'FaceNet MobileNetV1 (bubbliiiing/facenet-pytorch)'). */
  modelName: string;
  /** Every weight the graph consumes: state-dict key → dims, in the graph's order. */
  expected: ReadonlyMap<string, readonly number[]>;
  /**
   * Entries the reference implementation saves but does not use for inference (a training-only
   * classifier head, say): return undefined to drop the tensor, or a message when it is present but
   * malformed. Keys not claimed here and not expected are errors.
   */
  ignore?: (key: string, tensor: TorchTensor, all: ReadonlyMap<string, TorchTensor>) => { drop: true } | { error: string } | undefined;
  /** A more specific explanation when the keys do not match at all (e.g. a sibling architecture). */
  hint?: (keys: readonly string[]) => string | undefined;
}

const FLOAT_DTYPES: ReadonlySet<TorchDType> = new Set<TorchDType>(['float32', 'float16', 'bfloat16', 'float64']);
/** How many keys a message lists before '...'. */
const LIST_LIMIT = 5;

/**
 * Reads a checkpoint given as bytes or a path.
 *
 * @returns the state dict and the name to use in messages (the quoted path, `name`, or 'the checkpoint')
 * @throws FaceError E_INPUT for a wrong argument or an unreadable file, E_MODEL for a file that is
 *   not a readable checkpoint
 */
export async function readCheckpointArgument(
  checkpoint: unknown,
  name: unknown,
  fn: string,
): Promise<{ tensors: Map<string, TorchTensor>; what: string }> {
  if (name !== undefined && typeof name !== 'string') throw invalidType('a string', 'options.name', name);
  let bytes: Uint8Array;
  let what = name as string | undefined;
  if (typeof checkpoint === 'string') {
    what ??= `'${checkpoint}'`;
    try {
      bytes = await fs.readFile(checkpoint);
    } catch (cause) {
      throw new FaceError('E_INPUT', `Cannot read checkpoint file '${checkpoint}': ${(cause as Error).message}`, { cause });
    }
  } else if (checkpoint instanceof Uint8Array) {
    bytes = checkpoint;
  } else {
    throw invalidType('a file path or a Uint8Array of checkpoint bytes', `${fn}(checkpoint)`, checkpoint);
  }
  return { tensors: readTorchCheckpoint(bytes, what), what: what ?? 'the checkpoint' };
}

/**
 * Checks a state dict against the graph's weights and returns them as float32, by key.
 *
 * A `module.` prefix on every key (nn.DataParallel) is removed, BatchNorm `num_batches_tracked`
 * counters are ignored, and float16 / bfloat16 / float64 tensors are converted to float32.
 *
 * @param what the checkpoint's name in messages
 * @throws FaceError E_MODEL for a missing or unexpected key, a wrong shape or a non-float dtype
 */
export function checkStateDict(tensors: ReadonlyMap<string, TorchTensor>, spec: StateDictSpec, what: string): Map<string, WeightTensor> {
  if (!(tensors instanceof Map)) throw invalidType('a Map of state-dict key to tensor', 'the state dict', tensors);
  const want = spec.expected;
  const keys = [...tensors.keys()];
  const strip = keys.length > 0 && keys.every((k) => typeof k === 'string' && k.startsWith('module.'));
  const byKey = new Map<string, TorchTensor>();
  for (const [key, tensor] of tensors) {
    const name = strip ? key.slice('module.'.length) : key;
    if (name === 'num_batches_tracked' || name.endsWith('.num_batches_tracked')) continue;
    byKey.set(name, tensor);
  }
  for (const [key, tensor] of [...byKey]) {
    if (want.has(key) || !spec.ignore) continue;
    const verdict = spec.ignore(key, tensor, byKey);
    if (verdict === undefined) continue;
    if ('error' in verdict) throw new FaceError('E_MODEL', `${verdict.error} (in ${what})`);
    byKey.delete(key);
  }

  const missing = [...want.keys()].filter((k) => !byKey.has(k));
  const extra = [...byKey.keys()].filter((k) => !want.has(k));
  if (missing.length > 0 || extra.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0) {
      parts.push(`${missing.length === 1 ? 'is missing the weight' : `is missing ${missing.length} weights:`} ${listKeys(missing, (k) => `[${want.get(k)!.join(', ')}]`)}`);
    }
    if (extra.length > 0) {
      parts.push(`${extra.length === 1 ? 'has the unexpected tensor' : `has ${extra.length} unexpected tensors:`} ${listKeys(extra, (k) => `[${byKey.get(k)!.dims.join(', ')}]`)}`);
    }
    const specific = spec.hint?.([...byKey.keys()]);
    const hint = specific
      ? ` (${specific})`
      : missing.length === want.size
        ? ` (none of the expected keys is present: not a ${spec.modelName} state dict)`
        : missing.length > 0 && extra.length > 0
          ? ' (a different architecture or renamed keys?)'
          : '';
    throw new FaceError('E_MODEL', `Expected the ${want.size} weights of ${spec.modelName} in ${what}, but it ${parts.join(' and ')}${hint}`);
  }

  const weights = new Map<string, WeightTensor>();
  for (const [key, dims] of want) {
    const tensor = byKey.get(key)!;
    const label = `weight '${key}' of ${what}`;
    if (!FLOAT_DTYPES.has(tensor.dtype)) {
      throw new FaceError('E_MODEL', `Expected a floating-point tensor (float32, float16, bfloat16 or float64) for ${label} but received ${tensor.dtype}`);
    }
    if (tensor.dims.length !== dims.length || tensor.dims.some((d, i) => d !== dims[i])) {
      throw new FaceError('E_MODEL', `Expected dims [${dims.join(', ')}] for ${label} but received [${tensor.dims.join(', ')}]`);
    }
    const data = toFloat32(tensor);
    const count = dims.reduce((a, b) => a * b, 1);
    if (data.length !== count) {
      throw new FaceError('E_MODEL', `Expected ${count} elements (dims [${dims.join(', ')}]) for ${label} but received ${data.length}`);
    }
    weights.set(key, { data, dims });
  }
  return weights;
}

/**
 * Builds a graph from checked weights, making sure the graph consumed every one of them.
 *
 * @param build the graph builder, called with a weight lookup
 */
export function buildWithWeights(weights: ReadonlyMap<string, WeightTensor>, what: string, modelName: string, build: (lookup: (key: string) => WeightTensor | undefined) => Uint8Array): Uint8Array {
  const consumed = new Set<string>();
  const lookup = (key: string): WeightTensor | undefined => {
    consumed.add(key);
    return weights.get(key);
  };
  let bytes: Uint8Array;
  try {
    bytes = build(lookup);
  } catch (error) {
    // checkStateDict has validated every key and shape, so the builder should not object; if it
    // does, it is still the weights it objects to.
    if (error instanceof RangeError || error instanceof TypeError) {
      throw new FaceError('E_MODEL', `${(error as Error).message} (in ${what})`, { cause: error });
    }
    throw error;
  }
  const unused = [...weights.keys()].filter((k) => !consumed.has(k));
  if (unused.length > 0) throw new FaceError('E_INTERNAL', `The ${modelName} graph did not consume the weights ${listKeys(unused)} of ${what}`);
  return bytes;
}

export function listKeys(keys: readonly string[], detail?: (key: string) => string): string {
  const shown = keys.slice(0, LIST_LIMIT).map((k) => `'${k}'${detail ? ` ${detail(k)}` : ''}`);
  return `${shown.join(', ')}${keys.length > LIST_LIMIT ? `, ... (${keys.length - LIST_LIMIT} more)` : ''}`;
}

export interface TorchConverterOptions extends ModelOptions {
  /** A name for the checkpoint in error messages (default: the path, or 'the checkpoint'). */
  name?: string;
}

/**
 * The two entry points every PyTorch converter has: `convert(bytes | path, options)`, and
 * `fromTensors(stateDict, options)` for callers (and tests) that hold a state dict already.
 *
 * @param fn the public function's name, for argument errors
 * @param spec the weights the graph consumes (made on first use)
 * @param build writes the graph with a weight lookup and the ONNX model options
 */
export function torchConverter(
  fn: string,
  spec: () => StateDictSpec,
  build: (weights: (key: string) => WeightTensor | undefined, model: ModelOptions) => Uint8Array,
): {
  convert: (checkpoint: Uint8Array | string, opts?: TorchConverterOptions) => Promise<Uint8Array>;
  fromTensors: (tensors: ReadonlyMap<string, TorchTensor>, opts?: TorchConverterOptions) => Uint8Array;
} {
  let cached: StateDictSpec | undefined;
  const fromTensors = (tensors: ReadonlyMap<string, TorchTensor>, opts: TorchConverterOptions = {}): Uint8Array => {
    cached ??= spec();
    const what = opts.name ?? 'the checkpoint';
    const weights = checkStateDict(tensors, cached, what);
    const { opset, irVersion, producer, producerVersion, domainVersions } = opts;
    return buildWithWeights(weights, what, cached.modelName, (lookup) =>
      build(lookup, { opset, irVersion, producer, producerVersion, domainVersions }),
    );
  };
  const convert = async (checkpoint: Uint8Array | string, opts: TorchConverterOptions = {}): Promise<Uint8Array> => {
    if (typeof opts !== 'object' || opts === null) throw invalidType('an options object', `${fn}(checkpoint, options)`, opts);
    const { tensors, what } = await readCheckpointArgument(checkpoint, opts.name, fn);
    return fromTensors(tensors, { ...opts, name: what });
  };
  return { convert, fromTensors };
}

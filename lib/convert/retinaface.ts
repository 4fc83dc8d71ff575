/**
 * Converts the published RetinaFace MobileNet-0.25 weights (biubug6/Pytorch_Retinaface
 * `mobilenet0.25_Final.pth`, cfg_mnet) into an ONNX model: the graph of
 * {@link buildRetinaFaceMnet025} with the checkpoint's tensors as its initializers.
 *
 * The checkpoint must hold exactly the weights that graph consumes (see {@link retinaFaceKeys}):
 * a `module.` prefix on every key (nn.DataParallel) is removed and BatchNorm `num_batches_tracked`
 * counters are ignored; any other missing or extra tensor, a wrong shape or a non-float dtype is a
 * FaceError E_MODEL, so that no weight is ever left random or silently dropped. float16, bfloat16 and
 * float64 tensors are converted to float32.
 */
import * as fs from 'node:fs/promises';
import { FaceError, invalidType } from '../errors';
import type { ModelOptions } from '../onnx/builder';
import { buildRetinaFaceMnet025, retinaFaceKeys } from '../graphs/retinaface';
import type { WeightKey, WeightTensor } from '../graphs/layers';
import { readTorchCheckpoint, toFloat32, type TorchDType, type TorchTensor } from './torch-checkpoint';

export interface ConvertRetinaFaceOptions extends ModelOptions {
  /** A name for the checkpoint in error messages (default: the path, or 'the checkpoint'). */
  name?: string;
}

const MODEL_NAME = 'RetinaFace MobileNet-0.25 (Pytorch_Retinaface cfg_mnet)';
const FLOAT_DTYPES: ReadonlySet<TorchDType> = new Set<TorchDType>(['float32', 'float16', 'bfloat16', 'float64']);
/** How many keys a message lists before '...'. */
const LIST_LIMIT = 5;

let expectedKeys: ReadonlyMap<string, readonly number[]> | undefined;

/** The state_dict keys the graph consumes, with their dims (computed once). */
function expected(): ReadonlyMap<string, readonly number[]> {
  expectedKeys ??= new Map(retinaFaceKeys().map((k: WeightKey) => [k.key, k.dims] as const));
  return expectedKeys;
}

/**
 * Converts a Pytorch_Retinaface mobilenet0.25 checkpoint (legacy or zip `torch.save` file; a plain
 * state dict or a training checkpoint holding one) into the bytes of an ONNX model with input
 * `input0` [N,3,H,W] (BGR minus (104,117,123)) and outputs `loc`, `conf` (softmax), `landms`.
 *
 * @param checkpoint the file's bytes, or its path
 * @throws FaceError E_INPUT for a wrong argument or an unreadable file; E_MODEL when the file is not a
 *   checkpoint or its weights are not exactly those of RetinaFace mnet0.25
 */
export async function convertRetinaFaceMnet025(checkpoint: Uint8Array | string, opts: ConvertRetinaFaceOptions = {}): Promise<Uint8Array> {
  if (typeof opts !== 'object' || opts === null) throw invalidType('an options object', 'convertRetinaFaceMnet025(checkpoint, options)', opts);
  if (opts.name !== undefined && typeof opts.name !== 'string') throw invalidType('a string', 'options.name', opts.name);
  let bytes: Uint8Array;
  let what = opts.name;
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
    throw invalidType('a file path or a Uint8Array of checkpoint bytes', 'convertRetinaFaceMnet025(checkpoint)', checkpoint);
  }
  const tensors = readTorchCheckpoint(bytes, what);
  return convertFromTensors(tensors, { ...opts, name: what });
}

/**
 * The conversion after reading: checks a state dict (key → tensor) against the graph's weights and
 * writes the ONNX bytes. Exposed for tests, which build modified state dicts from a real one.
 *
 * @internal
 */
export function convertFromTensors(tensors: ReadonlyMap<string, TorchTensor>, opts: ConvertRetinaFaceOptions = {}): Uint8Array {
  if (!(tensors instanceof Map)) throw invalidType('a Map of state-dict key to tensor', 'convertFromTensors(tensors)', tensors);
  const what = opts.name ?? 'the checkpoint';
  const weights = checkWeights(tensors, what);
  const consumed = new Set<string>();
  const lookup = (key: string): WeightTensor | undefined => {
    consumed.add(key);
    return weights.get(key);
  };
  let bytes: Uint8Array;
  try {
    bytes = buildRetinaFaceMnet025({ weights: lookup, opset: opts.opset, irVersion: opts.irVersion, producer: opts.producer, producerVersion: opts.producerVersion, domainVersions: opts.domainVersions });
  } catch (error) {
    // checkWeights has validated every key and shape, so the builder should not object; if it does,
    // it is still the weights it is objecting to.
    if (error instanceof RangeError || error instanceof TypeError) {
      throw new FaceError('E_MODEL', `${(error as Error).message} (in ${what})`, { cause: error });
    }
    throw error;
  }
  const unused = [...weights.keys()].filter((k) => !consumed.has(k));
  if (unused.length > 0 || consumed.size !== weights.size) {
    throw new FaceError('E_INTERNAL', `The RetinaFace graph did not consume the weights ${listKeys(unused)} of ${what}`);
  }
  return bytes;
}

/** Validates the state dict and returns the graph's weights as float32, by key. */
function checkWeights(tensors: ReadonlyMap<string, TorchTensor>, what: string): Map<string, WeightTensor> {
  const want = expected();
  const keys = [...tensors.keys()];
  const strip = keys.length > 0 && keys.every((k) => typeof k === 'string' && k.startsWith('module.'));
  const byKey = new Map<string, TorchTensor>();
  for (const [key, tensor] of tensors) {
    const name = strip ? key.slice('module.'.length) : key;
    if (name === 'num_batches_tracked' || name.endsWith('.num_batches_tracked')) continue;
    byKey.set(name, tensor);
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
    const hint =
      missing.length === want.size
        ? ' (none of the expected keys is present: not a Pytorch_Retinaface mobilenet0.25 state dict)'
        : missing.length > 0 && extra.length > 0
          ? ' (a different architecture or renamed keys?)'
          : '';
    throw new FaceError('E_MODEL', `Expected the ${want.size} weights of ${MODEL_NAME} in ${what}, but it ${parts.join(' and ')}${hint}`);
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
    const count = dims.reduce((a, b) => a * b, 1);
    const data = toFloat32(tensor);
    if (data.length !== count) {
      throw new FaceError('E_MODEL', `Expected ${count} elements (dims [${dims.join(', ')}]) for ${label} but received ${data.length}`);
    }
    weights.set(key, { data, dims });
  }
  return weights;
}

function listKeys(keys: readonly string[], detail?: (key: string) => string): string {
  const shown = keys.slice(0, LIST_LIMIT).map((k) => `'${k}'${detail ? ` ${detail(k)}` : ''}`);
  return `${shown.join(', ')}${keys.length > LIST_LIMIT ? `, ... (${keys.length - LIST_LIMIT} more)` : ''}`;
}

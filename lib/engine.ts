/**
 * The network engine: load an ONNX model and run it on the native core, off the event loop.
 */
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import { binding, type NativeModel, type NativeTensor } from './binding';
import { FaceError, fromNative, invalidRange, invalidType } from './errors';

export type DeviceName = 'cpu' | 'cuda' | 'auto';
export type Precision = 'fp32' | 'fp16';

export interface LoadModelOptions {
  /** Where to run. 'auto' picks CUDA when usable, else the CPU. Default 'cpu'. */
  device?: DeviceName;
  /**
   * Arithmetic on CUDA: 'fp16' runs convolutions and matrix products on tensor cores (fp32
   * accumulation). The CPU computes in fp32; with device 'auto' on a machine without a GPU, 'fp16'
   * falls back to fp32 as well. Default 'fp32'.
   */
  precision?: Precision;
  /** CPU threads for this model (default: every core this process may use). */
  threads?: number;
}

export interface Tensor {
  data: Float32Array;
  dims: readonly number[];
}

export interface ValueInfo {
  name: string;
  /** Sizes, or the symbol of a free size (e.g. 'N', 'H'). */
  dims: (number | string)[];
}

export interface DeviceStatus {
  name: 'cpu' | 'cuda';
  available: boolean;
  /** What it is when available; why not otherwise. */
  detail: string;
}

/** Every backend this build knows, whether it works on this machine, and why not. */
export function devices(): DeviceStatus[] {
  return binding().devices() as DeviceStatus[];
}

/** @internal every core this process may use. */
export function defaultThreads(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/**
 * @internal validates options.device and says where a model runs: 'auto' is CUDA when usable, else
 * the CPU; 'cuda' where it is not usable rejects with E_DEVICE and the reason devices() gives.
 * `what` names the caller in that message when only part of the library runs on CUDA.
 */
export function resolveDevice(device: unknown, cudaSupported: string | true = true): 'cpu' | 'cuda' {
  if (device === undefined || device === 'cpu') return 'cpu';
  if (device !== 'cuda' && device !== 'auto') throw invalidType("'cpu', 'cuda' or 'auto'", 'options.device', device);
  const cuda = devices().find((d) => d.name === 'cuda');
  const usable = Boolean(cuda?.available) && cudaSupported === true;
  if (device === 'auto') return usable ? 'cuda' : 'cpu';
  if (usable) return 'cuda';
  throw new FaceError(
    'E_DEVICE',
    cuda?.available
      ? `device 'cuda' was requested: a GPU is present (${cuda.detail}) but ${cudaSupported}; use 'cpu' or 'auto'`
      : `device 'cuda' was requested but CUDA is not usable here: ${cuda?.detail ?? 'unknown'}; use 'cpu' or 'auto'`,
  );
}

export class Model {
  /** Where it runs, and in which arithmetic ('fp16' only on CUDA). */
  readonly device: 'cpu' | 'cuda';
  readonly precision: Precision;
  #native: NativeModel | undefined;
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];

  /** @internal use loadModel() */
  constructor(native: NativeModel) {
    this.#native = native;
    this.device = native.device;
    this.precision = native.precision;
    this.inputs = Object.freeze(native.inputs.map((v) => Object.freeze({ name: v.name, dims: [...v.dims] })));
    this.outputs = Object.freeze(native.outputs.map((v) => Object.freeze({ name: v.name, dims: [...v.dims] })));
  }

  get threads(): number {
    return this.#live().threads;
  }

  /** Runs the network; resolves to one tensor per graph output, by name. */
  async run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    const native = this.#live();
    const ordered = this.#validate(feeds);
    const callerStack = new Error();
    let results: NativeTensor[];
    try {
      results = await native.run(ordered);
    } catch (error) {
      throw fromNative(error, callerStack);
    }
    const out: Record<string, Tensor> = {};
    this.outputs.forEach((o, k) => {
      out[o.name] = results[k];
    });
    return out;
  }

  /** Frees the native model. Runs already started finish; later calls throw E_STATE. */
  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  #live(): NativeModel {
    if (!this.#native) throw new FaceError('E_STATE', 'The model has been disposed');
    return this.#native;
  }

  #validate(feeds: unknown): NativeTensor[] {
    if (typeof feeds !== 'object' || feeds === null || Array.isArray(feeds))
      throw invalidType('an object mapping input names to { data, dims }', 'model.run(feeds)', feeds);
    const names = new Set(this.inputs.map((i) => i.name));
    for (const key of Object.keys(feeds))
      if (!names.has(key))
        throw invalidRange(`only the model's inputs (${[...names].join(', ')})`, 'feeds', `an extra input '${key}'`);
    return this.inputs.map((input) => {
      const tensor = (feeds as Record<string, unknown>)[input.name] as Partial<Tensor> | undefined;
      const what = `input '${input.name}'`;
      if (tensor === undefined) throw invalidType('a { data, dims } tensor', what, undefined);
      if (!(tensor.data instanceof Float32Array)) throw invalidType('a Float32Array', `${what}.data`, tensor.data);
      const dims = tensor.dims;
      if (!Array.isArray(dims) || !dims.every((d) => Number.isSafeInteger(d) && d >= 0))
        throw invalidType('an array of non-negative integers', `${what}.dims`, dims);
      const count = dims.reduce((a, b) => a * b, 1);
      if (count !== tensor.data.length)
        throw invalidRange(`${count} values (the product of dims [${dims.join(', ')}])`, `${what}.data`, tensor.data);
      if (count === 0) throw invalidRange('a non-empty tensor', what, `dims [${dims.join(', ')}]`);
      if (input.dims.length !== dims.length)
        throw invalidRange(`rank ${input.dims.length} ([${input.dims.join(', ')}])`, `${what}.dims`, `[${dims.join(', ')}]`);
      input.dims.forEach((d, k) => {
        if (typeof d === 'number' && d !== dims[k])
          throw invalidRange(`size ${d} at axis ${k}`, `${what}.dims`, `[${dims.join(', ')}]`);
      });
      return { data: tensor.data, dims: [...dims] };
    });
  }
}

/**
 * Loads an ONNX model from a file path or the bytes of one. Parsing and checking happen off the
 * event loop; an unsupported op or a malformed file rejects with FaceError E_MODEL.
 */
export async function loadModel(source: string | Uint8Array, options: LoadModelOptions = {}): Promise<Model> {
  if (typeof options !== 'object' || options === null) throw invalidType('an options object', 'loadModel(options)', options);
  const device = resolveDevice(options.device);
  if (options.precision !== undefined && options.precision !== 'fp32' && options.precision !== 'fp16')
    throw invalidType("'fp32' or 'fp16'", 'options.precision', options.precision);
  if (options.precision === 'fp16' && options.device === 'cpu')
    throw invalidRange("'fp32' on the CPU (fp16 runs on CUDA)", 'options.precision', options.precision);
  const precision: Precision = device === 'cuda' ? (options.precision ?? 'fp32') : 'fp32';
  const threads = options.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 1 || threads > 256)
    throw invalidRange('an integer from 1 to 256', 'options.threads', threads);
  let bytes: Uint8Array;
  if (typeof source === 'string') {
    try {
      bytes = await fs.readFile(source);
    } catch (cause) {
      throw new FaceError('E_INPUT', `Cannot read model file '${source}': ${(cause as Error).message}`, { cause });
    }
  } else if (source instanceof Uint8Array) {
    bytes = source;
  } else {
    throw invalidType('a file path or a Uint8Array of ONNX bytes', 'loadModel(source)', source);
  }
  const callerStack = new Error();
  try {
    return new Model(await binding().loadModel(bytes, threads, device, precision));
  } catch (error) {
    throw fromNative(error, callerStack);
  }
}

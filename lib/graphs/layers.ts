/**
 * Shared pieces of the graph builders: where weights come from, and PyTorch-style layers
 * (Conv2d, BatchNorm, activations) emitted unfused, as torch.onnx.export writes them.
 *
 * Every weight is an initializer named exactly by its PyTorch state_dict key, so that a converter
 * can map a checkpoint onto a graph by name.
 */
import { OnnxGraphBuilder } from '../onnx/builder';
import { SeededRandom } from '../onnx/random';

export interface WeightTensor {
  data: Float32Array;
  dims: readonly number[];
}

/** Real weights by state_dict key: a map (extra keys ignored) or a lookup function. */
export type WeightSource =
  | ReadonlyMap<string, WeightTensor>
  | ((key: string, dims: readonly number[]) => WeightTensor | undefined);

export interface GraphBuildOptions {
  /** Real weights; without them every weight is seeded random with a sensible scale. */
  weights?: WeightSource;
  /** Seed of the random weights (ignored for keys supplied by `weights`). Default 1. */
  seed?: number;
}

export interface WeightKey {
  key: string;
  dims: number[];
}

/** How a random weight is drawn; the scales keep activations O(1) through deep stacks. */
export type WeightInit =
  | 'conv' // He normal: std sqrt(2 / fan_in), for layers followed by a (leaky) ReLU
  | 'linear' // std sqrt(1 / fan_in)
  | 'bias' // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as PyTorch's default; fan_in passed separately
  | 'bn.weight' // gamma ~ U(0.5, 1.5)
  | 'bn.bias' // beta ~ N(0, 0.1)
  | 'bn.running_mean' // ~ N(0, 0.1)
  | 'bn.running_var'; // ~ U(0.5, 1.5)

export interface Conv2dSpec {
  inChannels: number;
  outChannels: number;
  kernel: number;
  stride?: number;
  padding?: number;
  groups?: number;
  bias?: boolean;
}

/** Emits layers into an OnnxGraphBuilder and resolves their weights by state_dict key. */
export class LayerBuilder {
  readonly graph: OnnxGraphBuilder;
  /** Every weight key requested, in the order the graph consumes them. */
  readonly keys: WeightKey[] = [];
  private readonly weights: WeightSource | undefined;
  private readonly seed: number;
  private readonly constants = new Map<string, string>();

  constructor(graph: OnnxGraphBuilder, opts: GraphBuildOptions = {}) {
    this.graph = graph;
    this.weights = opts.weights;
    this.seed = opts.seed ?? 1;
    if (!Number.isInteger(this.seed)) {
      throw new TypeError(`Expected an integer for seed but received ${String(opts.seed)}`);
    }
  }

  /** Adds the weight `key` as an initializer and returns its name (the key itself). */
  param(key: string, dims: readonly number[], init: WeightInit, fanIn = fanInOf(dims)): string {
    return this.graph.initializer(key, this.weight(key, dims, init, fanIn), dims);
  }

  /**
   * The values of the weight `key` (supplied, or seeded random), recorded in `keys` like `param` but
   * not added to the graph: for converters that re-layout or fold a weight before it becomes an
   * initializer (e.g. TensorFlow's HWIO filters into ONNX's OIHW).
   */
  weight(key: string, dims: readonly number[], init: WeightInit, fanIn = fanInOf(dims)): Float32Array {
    this.keys.push({ key, dims: [...dims] });
    return this.lookup(key, dims) ?? randomWeight(key, dims, init, fanIn, this.seed);
  }

  /** nn.Conv2d named `key` (its weight is `${key}.weight`, bias `${key}.bias`). */
  conv2d(x: string, key: string, spec: Conv2dSpec, init: WeightInit = 'conv'): string {
    const { inChannels, outChannels, kernel, stride = 1, padding = 0, groups = 1, bias = false } = spec;
    const weightDims = [outChannels, inChannels / groups, kernel, kernel];
    const inputs = [x, this.param(`${key}.weight`, weightDims, init)];
    if (bias) inputs.push(this.param(`${key}.bias`, [outChannels], 'bias', fanInOf(weightDims)));
    const attrs = {
      dilations: [1, 1],
      group: groups,
      kernel_shape: [kernel, kernel],
      pads: [padding, padding, padding, padding],
      strides: [stride, stride],
    };
    return this.graph.node('Conv', inputs, attrs, { name: key })[0]!;
  }

  /** nn.BatchNorm1d/2d in eval mode, named `key`. */
  batchNorm(x: string, key: string, channels: number, epsilon = 1e-5): string {
    const inputs = [
      x,
      this.param(`${key}.weight`, [channels], 'bn.weight'),
      this.param(`${key}.bias`, [channels], 'bn.bias'),
      this.param(`${key}.running_mean`, [channels], 'bn.running_mean'),
      this.param(`${key}.running_var`, [channels], 'bn.running_var'),
    ];
    // momentum is what PyTorch writes (1 - 0.1); inference ignores it.
    return this.graph.node('BatchNormalization', inputs, { epsilon: { f: epsilon }, momentum: { f: 0.9 } }, { name: key })[0]!;
  }

  leakyRelu(x: string, name: string, negativeSlope: number): string {
    return this.graph.node('LeakyRelu', [x], { alpha: { f: negativeSlope } }, { name })[0]!;
  }

  relu(x: string, name: string): string {
    return this.graph.node('Relu', [x], {}, { name })[0]!;
  }

  /** nn.ReLU6 exports as Clip with min/max inputs (opset >= 11). */
  relu6(x: string, name: string): string {
    return this.graph.node('Clip', [x, this.floatScalar(0), this.floatScalar(6)], {}, { name })[0]!;
  }

  /** A shared float scalar initializer (not a weight). */
  floatScalar(value: number): string {
    return this.constant(`const_f32_${value}`, () => new Float32Array([value]), []);
  }

  /** A shared int64 vector initializer (shapes, axes, slice bounds). */
  int64Vector(values: readonly number[]): string {
    const id = values.map((v) => (v < 0 ? `m${-v}` : `${v}`)).join('_');
    return this.constant(`const_i64_${id}`, () => BigInt64Array.from(values, (v) => BigInt(v)), [values.length]);
  }

  private constant(base: string, make: () => Float32Array | BigInt64Array, dims: number[]): string {
    let name = this.constants.get(base);
    if (name === undefined) {
      name = this.graph.initializer(this.graph.uniqueName(base), make(), dims);
      this.constants.set(base, name);
    }
    return name;
  }

  private lookup(key: string, dims: readonly number[]): Float32Array | undefined {
    if (this.weights === undefined) return undefined;
    const tensor = typeof this.weights === 'function' ? this.weights(key, dims) : this.weights.get(key);
    if (tensor === undefined) {
      throw new RangeError(`Expected a tensor for weight '${key}' [${dims.join(', ')}] but received none`);
    }
    if (!(tensor.data instanceof Float32Array)) {
      throw new TypeError(`Expected a Float32Array for weight '${key}' but received ${Object.prototype.toString.call(tensor.data)}`);
    }
    if (tensor.dims.length !== dims.length || tensor.dims.some((d, i) => d !== dims[i])) {
      throw new RangeError(`Expected dims [${dims.join(', ')}] for weight '${key}' but received [${tensor.dims.join(', ')}]`);
    }
    return tensor.data;
  }
}

/** Weight keys and dims requested by a graph construction, without drawing any random numbers. */
export function collectWeightKeys(construct: (opts: GraphBuildOptions) => LayerBuilder): WeightKey[] {
  const zeros = (_key: string, dims: readonly number[]): WeightTensor => ({
    data: new Float32Array(dims.reduce((a, b) => a * b, 1)),
    dims,
  });
  return construct({ weights: zeros }).keys;
}

function fanInOf(dims: readonly number[]): number {
  // Conv [out, in/groups, kh, kw] and Linear [out, in] both have fan_in = product of dims[1:].
  return dims.slice(1).reduce((a, b) => a * b, 1);
}

function randomWeight(key: string, dims: readonly number[], init: WeightInit, fanIn: number, seed: number): Float32Array {
  const count = dims.reduce((a, b) => a * b, 1);
  // Seeding per key keeps each tensor independent of the order the graph asks for weights.
  const rng = new SeededRandom(hashKey(key, seed));
  switch (init) {
    case 'conv':
      return rng.normalArray(count, 0, Math.sqrt(2 / fanIn));
    case 'linear':
      return rng.normalArray(count, 0, Math.sqrt(1 / fanIn));
    case 'bias': {
      const bound = 1 / Math.sqrt(fanIn);
      return rng.uniformArray(count, -bound, bound);
    }
    case 'bn.weight':
    case 'bn.running_var':
      return rng.uniformArray(count, 0.5, 1.5);
    case 'bn.bias':
    case 'bn.running_mean':
      return rng.normalArray(count, 0, 0.1);
  }
}

/** FNV-1a over the key, mixed with the seed. */
function hashKey(key: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

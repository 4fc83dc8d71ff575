/**
 * TensorFlow.js layers as ONNX nodes, for graphs converted from tfjs weights (@vladmandic/face-api):
 * TensorFlow's weight layouts and padding rules, on NCHW feature maps whose sizes are tracked
 * statically (the face-api networks have fixed input sizes, and TensorFlow's 'same' padding depends
 * on the input size).
 *
 * - Layouts: conv2d filters are HWIO [kh, kw, in, out] → ONNX OIHW; depthwise filters are HWCM
 *   [kh, kw, channels, multiplier] → ONNX [channels·multiplier, 1, kh, kw] with group = channels
 *   (output channel c·M + m, as TensorFlow orders them); dense weights [in, out] stay as they are
 *   (MatMul).
 * - Padding: 'valid' = none, output floor((size − kernel) / stride) + 1; 'same' = output
 *   ceil(size / stride), total padding max((out − 1)·stride + kernel − size, 0), of which the
 *   smaller half goes before and the larger after (bottom / right), so a stride-2 3×3 conv on an
 *   even size pads [0, 1], not [1, 1].
 * - Weights are looked up by their tfjs names with their tfjs dims (see LayerBuilder.weight);
 *   initializers are named after the ONNX node (`<node>/W`, `<node>/B`) because they are re-laid
 *   out (and, where a layer says so, folded) copies, not the manifest's tensors.
 */
import { OnnxGraphBuilder, type Dim } from '../onnx/builder';
import { LayerBuilder, type GraphBuildOptions } from './layers';

export type TfjsPadding = 'same' | 'valid';

/** A feature map in NCHW with its static channel count and spatial size (the batch is symbolic). */
export interface FeatureMap {
  name: string;
  channels: number;
  height: number;
  width: number;
}

/** Output size and [before, after] padding of one spatial axis, as TensorFlow computes them. */
export function tfjsAxisPadding(size: number, kernel: number, stride: number, padding: TfjsPadding): { out: number; before: number; after: number } {
  if (padding === 'valid') {
    const out = Math.floor((size - kernel) / stride) + 1;
    if (out < 1) throw new RangeError(`Expected a size of at least ${kernel} for a 'valid' ${kernel}-wide window but received ${size}`);
    return { out, before: 0, after: 0 };
  }
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + kernel - size, 0);
  const before = Math.floor(total / 2);
  return { out, before, after: total - before };
}

/** HWIO [kh, kw, in, out] → OIHW [out, in, kh, kw]. */
export function hwioToOihw(data: Float32Array, dims: readonly number[]): { data: Float32Array; dims: number[] } {
  const [kh, kw, cin, cout] = dims as [number, number, number, number];
  const out = new Float32Array(data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + y) * kw + x] = data[((y * kw + x) * cin + i) * cout + o]!;
  return { data: out, dims: [cout, cin, kh, kw] };
}

/** HWCM [kh, kw, channels, multiplier] → [channels·multiplier, 1, kh, kw] (output channel c·M + m). */
export function hwcmToOihw(data: Float32Array, dims: readonly number[]): { data: Float32Array; dims: number[] } {
  const [kh, kw, c, m] = dims as [number, number, number, number];
  const out = new Float32Array(data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let ci = 0; ci < c; ci++)
        for (let mi = 0; mi < m; mi++) out[((ci * m + mi) * kh + y) * kw + x] = data[((y * kw + x) * c + ci) * m + mi]!;
  return { data: out, dims: [c * m, 1, kh, kw] };
}

export interface TfjsConvSpec {
  /** tfjs key of the filter: HWIO for a dense conv, HWCM for a depthwise one. */
  filters: string;
  kernel: number;
  /** Output channels (dense) or the depth multiplier (depthwise, default 1). */
  outChannels?: number;
  stride: number;
  padding: TfjsPadding;
  depthwise?: boolean;
  /** tfjs key of a bias added after the convolution. */
  bias?: string;
  /**
   * A per-channel affine layer after the bias, `y · weights + biases` (face-api's "scale layer"),
   * folded into the filter and bias at conversion: W' = W·w, b' = b·w + biases.
   */
  scale?: { weights: string; biases: string };
}

/** tf.batchNorm in inference: (x − mean) · gamma / sqrt(variance + epsilon) + beta (tfjs keys). */
export interface TfjsBatchNormSpec {
  mean: string;
  variance: string;
  gamma?: string;
  beta?: string;
  epsilon: number;
}

/** Builds an ONNX graph from tfjs-style layers; `L` holds the weight keys requested. */
export class TfjsLayerBuilder {
  readonly L: LayerBuilder;
  readonly graph: OnnxGraphBuilder;

  constructor(graphName: string, opts: GraphBuildOptions = {}) {
    this.graph = new OnnxGraphBuilder(graphName);
    this.L = new LayerBuilder(this.graph, opts);
  }

  input(name: string, channels: number, height: number, width: number, batch: Dim = 'N'): FeatureMap {
    this.graph.input(name, [batch, channels, height, width]);
    return { name, channels, height, width };
  }

  /** tf.conv2d / tf.depthwiseConv2d (+ bias, + folded scale layer); `name` names the node. */
  conv2d(x: FeatureMap, name: string, spec: TfjsConvSpec): FeatureMap {
    const { kernel, stride, padding } = spec;
    const inC = x.channels;
    let weight: { data: Float32Array; dims: number[] };
    let outC: number;
    if (spec.depthwise) {
      const m = spec.outChannels ?? 1;
      const dims = [kernel, kernel, inC, m];
      weight = hwcmToOihw(this.L.weight(spec.filters, dims, 'conv', kernel * kernel * m), dims);
      outC = inC * m;
    } else {
      if (spec.outChannels === undefined) throw new TypeError(`Expected outChannels for the conv2d '${name}'`);
      outC = spec.outChannels;
      const dims = [kernel, kernel, inC, outC];
      weight = hwioToOihw(this.L.weight(spec.filters, dims, 'conv', kernel * kernel * inC), dims);
    }
    const fanIn = weight.dims.slice(1).reduce((a, b) => a * b, 1);
    let bias = spec.bias === undefined ? undefined : Float32Array.from(this.L.weight(spec.bias, [outC], 'bias', fanIn));
    if (spec.scale) {
      const w = this.L.weight(spec.scale.weights, [outC], 'bn.weight');
      const b = this.L.weight(spec.scale.biases, [outC], 'bn.bias');
      const per = weight.data.length / outC;
      for (let o = 0; o < outC; o++) for (let k = o * per; k < (o + 1) * per; k++) weight.data[k] = weight.data[k]! * w[o]!;
      const folded = new Float32Array(outC);
      for (let o = 0; o < outC; o++) folded[o] = (bias ? bias[o]! * w[o]! : 0) + b[o]!;
      bias = folded;
    }
    const ph = tfjsAxisPadding(x.height, kernel, stride, padding);
    const pw = tfjsAxisPadding(x.width, kernel, stride, padding);
    const inputs = [x.name, this.graph.initializer(this.graph.uniqueName(`${name}/W`), weight.data, weight.dims)];
    if (bias) inputs.push(this.graph.initializer(this.graph.uniqueName(`${name}/B`), bias, [outC]));
    const attrs = {
      dilations: [1, 1],
      group: spec.depthwise ? inC : 1,
      kernel_shape: [kernel, kernel],
      pads: [ph.before, pw.before, ph.after, pw.after],
      strides: [stride, stride],
    };
    const y = this.graph.node('Conv', inputs, attrs, { name })[0]!;
    return { name: y, channels: outC, height: ph.out, width: pw.out };
  }

  /**
   * tf.separableConv2d(x, depthwise, pointwise, stride, padding) + bias: a depthwise conv with the
   * stride and padding, then a 1×1 conv ('valid', stride 1) carrying the bias.
   */
  separableConv2d(
    x: FeatureMap,
    name: string,
    spec: { depthwise: string; pointwise: string; bias?: string; kernel: number; outChannels: number; stride: number; padding: TfjsPadding },
  ): FeatureMap {
    const dw = this.conv2d(x, `${name}/depthwise`, { filters: spec.depthwise, kernel: spec.kernel, stride: spec.stride, padding: spec.padding, depthwise: true });
    return this.conv2d(dw, `${name}/pointwise`, { filters: spec.pointwise, kernel: 1, outChannels: spec.outChannels, stride: 1, padding: 'valid', bias: spec.bias });
  }

  /** tf.batchNorm with moving statistics, as an ONNX BatchNormalization (missing gamma = 1, beta = 0). */
  batchNorm(x: FeatureMap, name: string, spec: TfjsBatchNormSpec): FeatureMap {
    const c = x.channels;
    const get = (key: string | undefined, init: 'bn.weight' | 'bn.bias' | 'bn.running_mean' | 'bn.running_var', fill: number) =>
      key === undefined ? new Float32Array(c).fill(fill) : this.L.weight(key, [c], init);
    const inputs = [
      x.name,
      this.graph.initializer(this.graph.uniqueName(`${name}/scale`), get(spec.gamma, 'bn.weight', 1), [c]),
      this.graph.initializer(this.graph.uniqueName(`${name}/bias`), get(spec.beta, 'bn.bias', 0), [c]),
      this.graph.initializer(this.graph.uniqueName(`${name}/mean`), get(spec.mean, 'bn.running_mean', 0), [c]),
      this.graph.initializer(this.graph.uniqueName(`${name}/var`), get(spec.variance, 'bn.running_var', 1), [c]),
    ];
    const y = this.graph.node('BatchNormalization', inputs, { epsilon: { f: spec.epsilon } }, { name })[0]!;
    return { ...x, name: y };
  }

  relu(x: FeatureMap, name: string): FeatureMap {
    return { ...x, name: this.L.relu(x.name, name) };
  }

  relu6(x: FeatureMap, name: string): FeatureMap {
    return { ...x, name: this.L.relu6(x.name, name) };
  }

  /** tf.add of two maps of the same shape. */
  add(a: FeatureMap, b: FeatureMap, name: string): FeatureMap {
    if (a.channels !== b.channels || a.height !== b.height || a.width !== b.width) {
      throw new RangeError(`Expected equal shapes for the add '${name}' but received [${a.channels}, ${a.height}, ${a.width}] and [${b.channels}, ${b.height}, ${b.width}]`);
    }
    return { ...a, name: this.graph.node('Add', [a.name, b.name], {}, { name })[0]! };
  }

  /** tf.maxPool / tf.avgPool (square window); 'same' average pools count only real pixels, as tfjs. */
  pool(x: FeatureMap, name: string, kind: 'max' | 'avg', kernel: number, stride: number, padding: TfjsPadding): FeatureMap {
    const ph = tfjsAxisPadding(x.height, kernel, stride, padding);
    const pw = tfjsAxisPadding(x.width, kernel, stride, padding);
    const attrs: Record<string, number[] | number> = {
      kernel_shape: [kernel, kernel],
      pads: [ph.before, pw.before, ph.after, pw.after],
      strides: [stride, stride],
    };
    if (kind === 'avg') attrs.count_include_pad = 0;
    const y = this.graph.node(kind === 'max' ? 'MaxPool' : 'AveragePool', [x.name], attrs, { name })[0]!;
    return { ...x, name: y, height: ph.out, width: pw.out };
  }

  /** Zeros appended after the existing channels / rows / columns (tf.concat with tf.zeros). */
  padEnd(x: FeatureMap, name: string, extra: { channels?: number; height?: number; width?: number }): FeatureMap {
    const c = extra.channels ?? 0;
    const h = extra.height ?? 0;
    const w = extra.width ?? 0;
    if (c === 0 && h === 0 && w === 0) return x;
    const pads = this.L.int64Vector([0, 0, 0, 0, 0, c, h, w]);
    const y = this.graph.node('Pad', [x.name, pads], { mode: 'constant' }, { name })[0]!;
    return { name: y, channels: x.channels + c, height: x.height + h, width: x.width + w };
  }

  /** [N, C, H, W] → [N, C·H·W] in TensorFlow's NHWC order (for 1×1 maps the orders agree). */
  flatten(x: FeatureMap, name: string): { name: string; size: number } {
    let input = x.name;
    if (x.height !== 1 || x.width !== 1) input = this.graph.node('Transpose', [x.name], { perm: [0, 2, 3, 1] }, { name: `${name}/nhwc` })[0]!;
    const y = this.graph.node('Flatten', [input], { axis: 1 }, { name })[0]!;
    return { name: y, size: x.channels * x.height * x.width };
  }

  /** tf.matMul(x, weights[in, out]) (+ tf.add bias). */
  dense(x: { name: string; size: number }, name: string, spec: { weights: string; bias?: string; outSize: number }): { name: string; size: number } {
    const w = this.L.weight(spec.weights, [x.size, spec.outSize], 'linear', x.size);
    let y = this.graph.node('MatMul', [x.name, this.graph.initializer(this.graph.uniqueName(`${name}/W`), w, [x.size, spec.outSize])], {}, { name })[0]!;
    if (spec.bias !== undefined) {
      const b = this.L.weight(spec.bias, [spec.outSize], 'bias', x.size);
      y = this.graph.node('Add', [y, this.graph.initializer(this.graph.uniqueName(`${name}/B`), b, [spec.outSize])], {}, { name: `${name}/add` })[0]!;
    }
    return { name: y, size: spec.outSize };
  }
}

/**
 * RetinaFace with a MobileNetV1 x0.25 backbone (biubug6/Pytorch_Retinaface, cfg_mnet), as the ONNX
 * graph its phase='test' torch.onnx.export would produce: input `input0` [N,3,H,W] (BGR minus
 * (104,117,123), done by the caller), outputs `loc` [N,A,4], `conf` [N,A,2] (softmax), `landms` [N,A,10].
 * H and W are dynamic and need not be multiples of 32: FPN upsampling resizes to the finer map's size.
 */
import { OnnxGraphBuilder, int64Array, type ModelOptions } from '../onnx/builder';
import { collectWeightKeys, LayerBuilder, type GraphBuildOptions, type WeightKey } from './layers';

/** LeakyReLU slope of the backbone, and of FPN/SSH (whose out_channels 64 <= 64). */
const LEAKY_SLOPE = 0.1;
const FPN_CHANNELS = 64;
const ANCHORS_PER_CELL = 2;

/** [in, out, stride] of each conv_dw block; stage1 starts with conv_bn(3, 8, stride 2). */
const STAGE1_DW: ReadonlyArray<readonly [number, number, number]> = [
  [8, 16, 1],
  [16, 32, 2],
  [32, 32, 1],
  [32, 64, 2],
  [64, 64, 1],
];
const STAGE2_DW: ReadonlyArray<readonly [number, number, number]> = [
  [64, 128, 2],
  [128, 128, 1],
  [128, 128, 1],
  [128, 128, 1],
  [128, 128, 1],
  [128, 128, 1],
];
const STAGE3_DW: ReadonlyArray<readonly [number, number, number]> = [
  [128, 256, 2],
  [256, 256, 1],
];

/** Head name in the state_dict, values per anchor, and the output it feeds. */
const HEADS = [
  { key: 'ClassHead', perAnchor: 2 },
  { key: 'BboxHead', perAnchor: 4 },
  { key: 'LandmarkHead', perAnchor: 10 },
] as const;

export interface RetinaFaceGraphOptions extends GraphBuildOptions {
  /**
   * Names of the box, score and landmark outputs (default loc, conf, landms). Other exporters name
   * them differently (Pytorch_Retinaface's script names only the first, `output0`); tests use this.
   */
  outputNames?: readonly [string, string, string];
}

export type RetinaFaceBuildOptions = RetinaFaceGraphOptions & ModelOptions;

/** The graph, before serialisation (for inspection: initializer names, node count). */
export function buildRetinaFaceMnet025Graph(opts: RetinaFaceGraphOptions = {}): OnnxGraphBuilder {
  return constructRetinaFace(opts).graph;
}

export function buildRetinaFaceMnet025(opts: RetinaFaceBuildOptions = {}): Uint8Array {
  return buildRetinaFaceMnet025Graph(opts).toBytes(opts);
}

/** Every weight the graph consumes (state_dict keys without num_batches_tracked), with dims. */
export function retinaFaceKeys(): WeightKey[] {
  return collectWeightKeys(constructRetinaFace);
}

function constructRetinaFace(opts: RetinaFaceGraphOptions): LayerBuilder {
  const L = new LayerBuilder(new OnnxGraphBuilder('retinaface_mnet025'), opts);
  const g = L.graph;
  const image = g.input('input0', ['N', 3, 'H', 'W']);

  // Backbone (IntermediateLayerGetter returns stage1/2/3 at strides 8/16/32).
  let x = convBn(L, image, 'body.stage1.0', 3, 8, 3, 2, LEAKY_SLOPE);
  STAGE1_DW.forEach(([inC, outC, s], i) => (x = convDw(L, x, `body.stage1.${i + 1}`, inC, outC, s)));
  const stage1 = x;
  STAGE2_DW.forEach(([inC, outC, s], i) => (x = convDw(L, x, `body.stage2.${i}`, inC, outC, s)));
  const stage2 = x;
  STAGE3_DW.forEach(([inC, outC, s], i) => (x = convDw(L, x, `body.stage3.${i}`, inC, outC, s)));
  const stage3 = x;

  // FPN: lateral 1x1 convs, top-down nearest upsampling to the finer map's exact size, merge.
  let out1 = convBn(L, stage1, 'fpn.output1', 64, FPN_CHANNELS, 1, 1, LEAKY_SLOPE);
  let out2 = convBn(L, stage2, 'fpn.output2', 128, FPN_CHANNELS, 1, 1, LEAKY_SLOPE);
  const out3 = convBn(L, stage3, 'fpn.output3', 256, FPN_CHANNELS, 1, 1, LEAKY_SLOPE);
  out2 = g.node('Add', [out2, resizeNearestLike(L, out3, out2, 'fpn.up3')], {}, { name: 'fpn.add2' })[0]!;
  out2 = convBn(L, out2, 'fpn.merge2', FPN_CHANNELS, FPN_CHANNELS, 3, 1, LEAKY_SLOPE);
  out1 = g.node('Add', [out1, resizeNearestLike(L, out2, out1, 'fpn.up2')], {}, { name: 'fpn.add1' })[0]!;
  out1 = convBn(L, out1, 'fpn.merge1', FPN_CHANNELS, FPN_CHANNELS, 3, 1, LEAKY_SLOPE);

  const features = [ssh(L, out1, 'ssh1'), ssh(L, out2, 'ssh2'), ssh(L, out3, 'ssh3')];

  // Heads: ClassHead uses the dynamic Shape->Gather->Unsqueeze->Concat
  // reshape that torch exports for `view(out.shape[0], -1, k)`, the others a constant [0,-1,k].
  const perHead = HEADS.map(({ key, perAnchor }) =>
    features.map((feature, level) => {
      const conv = L.conv2d(
        feature,
        `${key}.${level}.conv1x1`,
        { inChannels: FPN_CHANNELS, outChannels: ANCHORS_PER_CELL * perAnchor, kernel: 1, bias: true },
        'linear',
      );
      const nhwc = g.node('Transpose', [conv], { perm: [0, 2, 3, 1] }, { name: `${key}.${level}.permute` })[0]!;
      const shape = key === 'ClassHead' ? dynamicBatchShape(L, nhwc, perAnchor, `${key}.${level}`) : L.int64Vector([0, -1, perAnchor]);
      return g.node('Reshape', [nhwc, shape], {}, { name: `${key}.${level}.view` })[0]!;
    }),
  );
  const [classes, boxes, landmarks] = perHead as [string[], string[], string[]];

  const [locName, confName, landmsName] = opts.outputNames ?? ['loc', 'conf', 'landms'];
  g.node('Concat', boxes, { axis: 1 }, { name: 'cat_bbox', outputs: [locName] });
  const logits = g.node('Concat', classes, { axis: 1 }, { name: 'cat_class' })[0]!;
  g.node('Softmax', [logits], { axis: -1 }, { name: 'softmax', outputs: [confName] });
  g.node('Concat', landmarks, { axis: 1 }, { name: 'cat_landmark', outputs: [landmsName] });

  g.output(locName, ['N', 'num_anchors', 4]);
  g.output(confName, ['N', 'num_anchors', 2]);
  g.output(landmsName, ['N', 'num_anchors', 10]);
  return L;
}

/** conv_bn / conv_bn1X1 / conv_bn_no_relu (slope null): Conv (no bias) -> BN -> LeakyReLU. */
function convBn(L: LayerBuilder, x: string, key: string, inC: number, outC: number, kernel: number, stride: number, slope: number | null): string {
  let y = L.conv2d(x, `${key}.0`, { inChannels: inC, outChannels: outC, kernel, stride, padding: (kernel - 1) / 2 });
  y = L.batchNorm(y, `${key}.1`, outC);
  return slope === null ? y : L.leakyRelu(y, `${key}.2`, slope);
}

/** conv_dw: depthwise 3x3 -> BN -> LeakyReLU -> pointwise 1x1 -> BN -> LeakyReLU. */
function convDw(L: LayerBuilder, x: string, key: string, inC: number, outC: number, stride: number): string {
  let y = L.conv2d(x, `${key}.0`, { inChannels: inC, outChannels: inC, kernel: 3, stride, padding: 1, groups: inC });
  y = L.batchNorm(y, `${key}.1`, inC);
  y = L.leakyRelu(y, `${key}.2`, LEAKY_SLOPE);
  y = L.conv2d(y, `${key}.3`, { inChannels: inC, outChannels: outC, kernel: 1 });
  y = L.batchNorm(y, `${key}.4`, outC);
  return L.leakyRelu(y, `${key}.5`, LEAKY_SLOPE);
}

/** SSH context module: cat(3x3, 5x5 = two 3x3, 7x7 = three 3x3) then ReLU. */
function ssh(L: LayerBuilder, x: string, key: string): string {
  const half = FPN_CHANNELS / 2;
  const quarter = FPN_CHANNELS / 4;
  const conv3 = convBn(L, x, `${key}.conv3X3`, FPN_CHANNELS, half, 3, 1, null);
  const conv5a = convBn(L, x, `${key}.conv5X5_1`, FPN_CHANNELS, quarter, 3, 1, LEAKY_SLOPE);
  const conv5 = convBn(L, conv5a, `${key}.conv5X5_2`, quarter, quarter, 3, 1, null);
  const conv7a = convBn(L, conv5a, `${key}.conv7X7_2`, quarter, quarter, 3, 1, LEAKY_SLOPE);
  const conv7 = convBn(L, conv7a, `${key}.conv7x7_3`, quarter, quarter, 3, 1, null);
  const cat = L.graph.node('Concat', [conv3, conv5, conv7], { axis: 1 }, { name: `${key}.cat` })[0]!;
  return L.relu(cat, `${key}.relu`);
}

/**
 * F.interpolate(x, size=[like.H, like.W], mode='nearest') as torch exports it at opset 13:
 * sizes = Concat(Shape(x)[0:2], Shape(like)[2:4]); Resize(x, '', '', sizes).
 */
function resizeNearestLike(L: LayerBuilder, x: string, like: string, name: string): string {
  const g = L.graph;
  const xShape = g.node('Shape', [x], {}, { name: `${name}.shape_x` })[0]!;
  const likeShape = g.node('Shape', [like], {}, { name: `${name}.shape_like` })[0]!;
  const zero = L.int64Vector([0]);
  const two = L.int64Vector([2]);
  const four = L.int64Vector([4]);
  const batchChannels = g.node('Slice', [xShape, zero, two, zero], {}, { name: `${name}.slice_nc` })[0]!;
  const spatial = g.node('Slice', [likeShape, two, four, zero], {}, { name: `${name}.slice_hw` })[0]!;
  const sizes = g.node('Concat', [batchChannels, spatial], { axis: 0 }, { name: `${name}.sizes` })[0]!;
  const attrs = {
    coordinate_transformation_mode: 'asymmetric',
    cubic_coeff_a: { f: -0.75 },
    mode: 'nearest',
    nearest_mode: 'floor',
  };
  return g.node('Resize', [x, '', '', sizes], attrs, { name })[0]!;
}

/** [x.shape[0], -1, k] built at run time, with Constant nodes as torch writes them. */
function dynamicBatchShape(L: LayerBuilder, x: string, k: number, name: string): string {
  const g = L.graph;
  const constant = (values: number[], dims: number[], suffix: string): string =>
    g.node('Constant', [], { value: { tensor: { data: int64Array(values), dims } } }, { name: `${name}.${suffix}` })[0]!;
  const shape = g.node('Shape', [x], {}, { name: `${name}.shape` })[0]!;
  const batch = g.node('Gather', [shape, constant([0], [], 'index0')], { axis: 0 }, { name: `${name}.gather` })[0]!;
  const batch1d = g.node('Unsqueeze', [batch, constant([0], [1], 'axes0')], {}, { name: `${name}.unsqueeze` })[0]!;
  const rest = [constant([-1], [1], 'minus1'), constant([k], [1], 'k')];
  return g.node('Concat', [batch1d, ...rest], { axis: 0 }, { name: `${name}.view_shape` })[0]!;
}

/**
 * FaceNet with a MobileNetV1 x1.0 backbone (bubbliiiing/facenet-pytorch, nets/facenet.py +
 * nets/mobilenet.py), as the ONNX graph torch.onnx.export would produce in predict mode:
 * input `input` [N,3,160,160] (RGB / 255 after letterbox), output `embedding` [N,128], L2-normalised.
 */
import { OnnxGraphBuilder, type ModelOptions } from '../onnx/builder';
import { collectWeightKeys, LayerBuilder, type GraphBuildOptions, type WeightKey } from './layers';

export const FACENET_INPUT_SIZE = 160;
export const FACENET_EMBEDDING_SIZE = 128;
const FEATURE_CHANNELS = 1024;
/** nn.BatchNorm1d(128, eps=0.001) of the reference; the backbone BatchNorm2d keep 1e-5. */
const LAST_BN_EPSILON = 1e-3;
/** F.normalize's default eps. */
const NORMALIZE_EPSILON = 1e-12;

/** [in, out, stride] of each conv_dw block per stage; stage1 starts with conv_bn(3, 32, stride 2). */
const STAGES: ReadonlyArray<ReadonlyArray<readonly [number, number, number]>> = [
  [
    [32, 64, 1],
    [64, 128, 2],
    [128, 128, 1],
    [128, 256, 2],
    [256, 256, 1],
  ],
  [
    [256, 512, 2],
    [512, 512, 1],
    [512, 512, 1],
    [512, 512, 1],
    [512, 512, 1],
    [512, 512, 1],
  ],
  [
    [512, 1024, 2],
    [1024, 1024, 1],
  ],
];

export type FaceNetBuildOptions = GraphBuildOptions & ModelOptions;

/** The graph, before serialisation (for inspection: initializer names, node count). */
export function buildFaceNetMobileNetV1Graph(opts: GraphBuildOptions = {}): OnnxGraphBuilder {
  return constructFaceNet(opts).graph;
}

export function buildFaceNetMobileNetV1(opts: FaceNetBuildOptions = {}): Uint8Array {
  return buildFaceNetMobileNetV1Graph(opts).toBytes(opts);
}

/** Every weight of the predict-mode graph (no `classifier.*`, no num_batches_tracked), with dims. */
export function faceNetKeys(): WeightKey[] {
  return collectWeightKeys(constructFaceNet);
}

function constructFaceNet(opts: GraphBuildOptions): LayerBuilder {
  const L = new LayerBuilder(new OnnxGraphBuilder('facenet_mobilenetv1'), opts);
  const g = L.graph;
  const image = g.input('input', ['N', 3, FACENET_INPUT_SIZE, FACENET_INPUT_SIZE]);

  // conv_bn(3, 32, 2): Conv -> BN -> ReLU6.
  let x = L.conv2d(image, 'backbone.model.stage1.0.0', { inChannels: 3, outChannels: 32, kernel: 3, stride: 2, padding: 1 });
  x = L.batchNorm(x, 'backbone.model.stage1.0.1', 32);
  x = L.relu6(x, 'backbone.model.stage1.0.2');
  STAGES.forEach((blocks, stage) => {
    // stage1 index 0 is the conv_bn above, so its conv_dw blocks start at 1.
    const first = stage === 0 ? 1 : 0;
    blocks.forEach(([inC, outC, stride], i) => {
      x = convDw(L, x, `backbone.model.stage${stage + 1}.${first + i}`, inC, outC, stride);
    });
  });

  // avg -> view(N, -1) -> Dropout (identity) -> Bottleneck (Linear, no bias) -> last_bn -> normalize.
  const pooled = g.node('GlobalAveragePool', [x], {}, { name: 'avg' })[0]!;
  const flat = g.node('Flatten', [pooled], { axis: 1 }, { name: 'flatten' })[0]!;
  const bottleneckWeight = L.param('Bottleneck.weight', [FACENET_EMBEDDING_SIZE, FEATURE_CHANNELS], 'linear');
  const projected = g.node('Gemm', [flat, bottleneckWeight], { alpha: { f: 1 }, beta: { f: 1 }, transB: 1 }, { name: 'Bottleneck' })[0]!;
  const normalised = L.batchNorm(projected, 'last_bn', FACENET_EMBEDDING_SIZE, LAST_BN_EPSILON);

  // F.normalize(p=2, dim=1): x / max(||x||, eps).
  const norm = g.node('ReduceL2', [normalised], { axes: [1], keepdims: 1 }, { name: 'normalize.norm' })[0]!;
  const clamped = g.node('Clip', [norm, L.floatScalar(NORMALIZE_EPSILON), ''], {}, { name: 'normalize.clamp' })[0]!;
  g.node('Div', [normalised, clamped], {}, { name: 'normalize.div', outputs: ['embedding'] });

  g.output('embedding', ['N', FACENET_EMBEDDING_SIZE]);
  return L;
}

/** conv_dw: depthwise 3x3 -> BN -> ReLU6 -> pointwise 1x1 -> BN -> ReLU6. */
function convDw(L: LayerBuilder, x: string, key: string, inC: number, outC: number, stride: number): string {
  let y = L.conv2d(x, `${key}.0`, { inChannels: inC, outChannels: inC, kernel: 3, stride, padding: 1, groups: inC });
  y = L.batchNorm(y, `${key}.1`, inC);
  y = L.relu6(y, `${key}.2`);
  y = L.conv2d(y, `${key}.3`, { inChannels: inC, outChannels: outC, kernel: 1 });
  y = L.batchNorm(y, `${key}.4`, outC);
  return L.relu6(y, `${key}.5`);
}

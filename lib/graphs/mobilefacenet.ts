/**
 * MobileFaceNet (Chen et al. 2018) as Xiaoccer/MobileFaceNet_Pytorch builds it (`core/model.py`), as
 * the ONNX graph torch.onnx.export would write: input `input` [N,3,112,96] (RGB, (x − 127.5) / 128,
 * on a SphereFace-aligned crop), output `embedding` [N,128] (not normalised: the pipeline does that).
 *
 * conv1 3×3 s2 → 64 + BN + PReLU; dw_conv1 depthwise 3×3 + BN + PReLU; 15 inverted-residual
 * bottlenecks (1×1 expand + BN + PReLU, depthwise 3×3 + BN + PReLU, 1×1 project + BN; residual add
 * when stride 1 and channels unchanged); conv2 1×1 → 512 + BN + PReLU; linear7 depthwise 7×6 (valid,
 * the whole map) + BN; linear1 1×1 → 128 + BN; flatten. BN eps 1e-5.
 */
import { OnnxGraphBuilder, type ModelOptions } from '../onnx/builder';
import { collectWeightKeys, LayerBuilder, type GraphBuildOptions, type WeightKey } from './layers';

export const MOBILEFACENET_INPUT = { width: 96, height: 112 } as const;
export const MOBILEFACENET_EMBEDDING_SIZE = 128;

/** [expansion, out channels, stride] of each bottleneck, as the reference's `Mobilefacenet_bottleneck_setting` unrolls. */
const BOTTLENECKS: ReadonlyArray<readonly [number, number, number]> = [
  [2, 64, 2], [2, 64, 1], [2, 64, 1], [2, 64, 1], [2, 64, 1],
  [4, 128, 2],
  [2, 128, 1], [2, 128, 1], [2, 128, 1], [2, 128, 1], [2, 128, 1], [2, 128, 1],
  [4, 128, 2],
  [2, 128, 1], [2, 128, 1],
];

class MobileFaceNetLayers {
  constructor(readonly l: LayerBuilder) {}

  /** nn.PReLU(channels), whose weight [C] broadcasts over H and W as [C,1,1] in ONNX. */
  prelu(x: string, key: string, channels: number): string {
    const slope = this.l.weight(`${key}.weight`, [channels], 'bn.weight');
    const name = this.l.graph.initializer(`${key}.weight`, slope, [channels, 1, 1]);
    return this.l.graph.node('PRelu', [x, name], {}, { name: key })[0]!;
  }

  /** The reference's ConvBlock: conv (no bias) + BN, then PReLU unless linear. */
  convBlock(x: string, key: string, inCh: number, outCh: number, kernel: [number, number], stride: number, pad: number,
            depthwise: boolean, linear: boolean, convKey = `${key}.conv`, bnKey = `${key}.bn`, preluKey = `${key}.prelu`): string {
    const groups = depthwise ? inCh : 1;
    const w = this.l.param(`${convKey}.weight`, [outCh, inCh / groups, kernel[0], kernel[1]], 'conv');
    let y = this.l.graph.node('Conv', [x, w], {
      dilations: [1, 1], group: groups, kernel_shape: kernel, pads: [pad, pad, pad, pad], strides: [stride, stride],
    }, { name: convKey })[0]!;
    y = this.l.batchNorm(y, bnKey, outCh);
    return linear ? y : this.prelu(y, preluKey, outCh);
  }

  /** blocks.{i}.conv.{0..7}: expand, depthwise, project (+ residual). */
  bottleneck(x: string, i: number, inCh: number, outCh: number, stride: number, expansion: number): string {
    const k = `blocks.${i}.conv`;
    const mid = inCh * expansion;
    let y = this.convBlock(x, k, inCh, mid, [1, 1], 1, 0, false, false, `${k}.0`, `${k}.1`, `${k}.2`);
    y = this.convBlock(y, k, mid, mid, [3, 3], stride, 1, true, false, `${k}.3`, `${k}.4`, `${k}.5`);
    y = this.convBlock(y, k, mid, outCh, [1, 1], 1, 0, false, true, `${k}.6`, `${k}.7`);
    return stride === 1 && inCh === outCh ? this.l.graph.node('Add', [x, y], {}, { name: `blocks.${i}.add` })[0]! : y;
  }
}

function construct(opts: GraphBuildOptions): LayerBuilder {
  const graph = new OnnxGraphBuilder('mobilefacenet');
  const l = new LayerBuilder(graph, opts);
  const m = new MobileFaceNetLayers(l);
  graph.input('input', ['N', 3, MOBILEFACENET_INPUT.height, MOBILEFACENET_INPUT.width]);
  let x = m.convBlock('input', 'conv1', 3, 64, [3, 3], 2, 1, false, false);
  x = m.convBlock(x, 'dw_conv1', 64, 64, [3, 3], 1, 1, true, false);
  let channels = 64;
  BOTTLENECKS.forEach(([expansion, out, stride], i) => {
    x = m.bottleneck(x, i, channels, out, stride, expansion);
    channels = out;
  });
  x = m.convBlock(x, 'conv2', channels, 512, [1, 1], 1, 0, false, false);
  x = m.convBlock(x, 'linear7', 512, 512, [7, 6], 1, 0, true, true);
  x = m.convBlock(x, 'linear1', 512, MOBILEFACENET_EMBEDDING_SIZE, [1, 1], 1, 0, false, true);
  graph.node('Flatten', [x], { axis: 1 }, { outputs: ['embedding'], name: 'flatten' });
  graph.output('embedding', ['N', MOBILEFACENET_EMBEDDING_SIZE]);
  return l;
}

export function buildMobileFaceNetGraph(opts: GraphBuildOptions = {}): OnnxGraphBuilder {
  return construct(opts).graph;
}

export function buildMobileFaceNet(opts: GraphBuildOptions & ModelOptions = {}): Uint8Array {
  const { opset, irVersion, producer, producerVersion, domainVersions } = opts;
  return construct(opts).graph.toBytes({ opset, irVersion, producer, producerVersion, domainVersions });
}

/** Every state-dict key the graph consumes, with its dims (no random numbers drawn). */
export function mobileFaceNetKeys(): WeightKey[] {
  return collectWeightKeys(construct);
}

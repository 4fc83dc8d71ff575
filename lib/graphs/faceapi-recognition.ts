/**
 * face-api's FaceRecognitionNet (@vladmandic/face-api `src/faceRecognitionNet/`): the dlib
 * ResNet-34-like face descriptor network (dlib_face_recognition_resnet_model_v1, 29 conv layers),
 * as an ONNX graph.
 *
 * Input `input` [N, 3, 150, 150]: RGB, (pixel − [122.782, 117.001, 104.298]) / 255, as
 * FaceRecognitionNet.forwardInput normalises (face-api first pads the face crop to a square with
 * zeros, centred, and resizes it bilinearly to 150 × 150; that is pre-processing, outside the graph).
 * Output `embedding` [N, 128]: the descriptor exactly as face-api returns it, not L2-normalised
 * (face-api compares descriptors by Euclidean distance, 0.6 being its customary threshold).
 *
 * The network (all convs followed by a bias and a per-channel scale layer, folded here into the conv):
 *   conv32_down: 7×7/2 'valid', 32, ReLU → maxPool 3×3/2 'valid'
 *   residual ×3 (32) → residualDown (64) → residual ×3 → residualDown (128) → residual ×2
 *   → residualDown (256) → residual ×2 → residualDown (256, "conv256_down_out")
 *   → mean over H, W → matMul fc [256, 128]
 * residual: relu(conv3×3 'same' + ReLU → conv3×3 'same' ... + x); residualDown: the first conv is
 * 3×3/2 'valid'; the shortcut is avgPool 2×2/2 'valid' of x, zero-padded to the new channel count,
 * and where the conv path comes out one row/column smaller, it is zero-padded at the bottom/right.
 */
import type { ModelOptions } from '../onnx/builder';
import { collectWeightKeys, type GraphBuildOptions, type WeightKey, type LayerBuilder } from './layers';
import { TfjsLayerBuilder, type FeatureMap } from './tfjs-layers';

export const FACEAPI_RECOGNITION_INPUT_SIZE = 150;
export const FACEAPI_DESCRIPTOR_SIZE = 128;
/** face-api's per-channel mean (RGB), subtracted before dividing by 255. */
export const FACEAPI_MEAN_RGB: readonly [number, number, number] = [122.782, 117.001, 104.298];

export type FaceApiRecognitionBuildOptions = GraphBuildOptions & ModelOptions;

export function buildFaceApiRecognition(opts: FaceApiRecognitionBuildOptions = {}): Uint8Array {
  return constructRecognition(opts).graph.toBytes(opts);
}

/** Every tensor of face_recognition_model-weights_manifest.json the graph consumes, with tfjs dims. */
export function faceApiRecognitionKeys(): WeightKey[] {
  return collectWeightKeys(constructRecognition);
}

function constructRecognition(opts: GraphBuildOptions): LayerBuilder {
  const T = new TfjsLayerBuilder('faceapi_face_recognition', opts);
  const size = FACEAPI_RECOGNITION_INPUT_SIZE;
  let x = T.input('input', 3, size, size);

  x = T.relu(convLayer(T, x, 'conv32_down', 32, 7, 2, 'valid'), 'conv32_down/relu');
  x = T.pool(x, 'maxpool', 'max', 3, 2, 'valid');

  for (const name of ['conv32_1', 'conv32_2', 'conv32_3']) x = residual(T, x, name);
  x = residualDown(T, x, 'conv64_down', 64);
  for (const name of ['conv64_1', 'conv64_2', 'conv64_3']) x = residual(T, x, name);
  x = residualDown(T, x, 'conv128_down', 128);
  for (const name of ['conv128_1', 'conv128_2']) x = residual(T, x, name);
  x = residualDown(T, x, 'conv256_down', 256);
  for (const name of ['conv256_1', 'conv256_2']) x = residual(T, x, name);
  x = residualDown(T, x, 'conv256_down_out', 256);

  // out.mean([1, 2]) → matMul(globalAvg, fc).
  const g = T.graph;
  const pooled = g.node('GlobalAveragePool', [x.name], {}, { name: 'global_avg' })[0]!;
  const flat = T.flatten({ ...x, name: pooled, height: 1, width: 1 }, 'flatten');
  const out = T.dense(flat, 'fc', { weights: 'fc', outSize: FACEAPI_DESCRIPTOR_SIZE });
  g.node('Identity', [out.name], {}, { name: 'embedding', outputs: ['embedding'] });
  g.output('embedding', ['N', FACEAPI_DESCRIPTOR_SIZE]);
  return T.L;
}

/** convLayer: conv2d → + conv/bias → scale layer (folded). */
function convLayer(T: TfjsLayerBuilder, x: FeatureMap, prefix: string, outChannels: number, kernel: number, stride: number, padding: 'same' | 'valid'): FeatureMap {
  return T.conv2d(x, `${prefix}/conv`, {
    filters: `${prefix}/conv/filters`,
    bias: `${prefix}/conv/bias`,
    scale: { weights: `${prefix}/scale/weights`, biases: `${prefix}/scale/biases` },
    kernel,
    outChannels,
    stride,
    padding,
  });
}

function residual(T: TfjsLayerBuilder, x: FeatureMap, prefix: string): FeatureMap {
  let out = T.relu(convLayer(T, x, `${prefix}/conv1`, x.channels, 3, 1, 'same'), `${prefix}/conv1/relu`);
  out = convLayer(T, out, `${prefix}/conv2`, x.channels, 3, 1, 'same');
  return T.relu(T.add(out, x, `${prefix}/add`), `${prefix}/relu`);
}

function residualDown(T: TfjsLayerBuilder, x: FeatureMap, prefix: string, outChannels: number): FeatureMap {
  let out = T.relu(convLayer(T, x, `${prefix}/conv1`, outChannels, 3, 2, 'valid'), `${prefix}/conv1/relu`);
  out = convLayer(T, out, `${prefix}/conv2`, outChannels, 3, 1, 'same');

  let pooled = T.pool(x, `${prefix}/avgpool`, 'avg', 2, 2, 'valid');
  // face-api appends one zero row and column when the conv path is smaller, and doubles the
  // shortcut's channels with zeros when they differ; nothing else would add up.
  const dh = pooled.height - out.height;
  const dw = pooled.width - out.width;
  if (dh < 0 || dh > 1 || dw < 0 || dw > 1 || (dh === 1) !== (dw === 1)) {
    throw new RangeError(`Unexpected shapes in ${prefix}: shortcut ${pooled.height}×${pooled.width}, conv path ${out.height}×${out.width}`);
  }
  if (pooled.channels !== outChannels && pooled.channels * 2 !== outChannels) {
    throw new RangeError(`Unexpected channels in ${prefix}: shortcut ${pooled.channels}, conv path ${outChannels}`);
  }
  out = T.padEnd(out, `${prefix}/pad_hw`, { height: dh, width: dw });
  pooled = T.padEnd(pooled, `${prefix}/pad_c`, { channels: outChannels - pooled.channels });
  return T.relu(T.add(pooled, out, `${prefix}/add`), `${prefix}/relu`);
}

/**
 * face-api's FaceLandmark68Net (@vladmandic/face-api `src/faceLandmarkNet/FaceLandmark68Net.ts`
 * with `src/faceFeatureExtractor/FaceFeatureExtractor.ts` and `src/faceProcessor/`), as an ONNX graph.
 *
 * Input `input` [N, 3, 112, 112]: RGB, (pixel − [122.782, 117.001, 104.298]) / 255, as
 * FaceFeatureExtractor.forwardInput normalises (face-api pads the face crop to a square with
 * zeros, centred, and resizes it bilinearly to 112 × 112 first: pre-processing, outside the graph).
 * Output `landmarks` [N, 136]: the network's tensor (FaceProcessor.runNet), 68 points as x0, y0,
 * x1, y1, ... relative to the 112 × 112 input (multiply by 112 for input pixels).
 *
 * Not in the graph (FaceLandmark68NetBase.postProcess and what follows): for a crop of w × h pixels
 * padded to a square of side s = max(w, h), face-api maps a relative point (u, v) to
 * x = (u·s − padX) / w, y = (v·s − padY) / h relative to the crop, where padX = (s − w) / 2 when
 * w < h (else 0) and padY = (s − h) / 2 when h < w; then × (w, h) and + the crop's origin in the
 * image. For a square crop that is just (u·s, v·s) + origin.
 *
 * The network: four dense blocks (denseBlock4) of 3×3 separable convs, each block
 *   out1 = relu(conv0(x)) (stride 2; block 0's conv0 is a plain conv2d), out2 = conv1(out1),
 *   out3 = conv2(relu(out1 + out2)), out4 = conv3(relu(out1 + (out2 + out3))),
 *   result relu(out1 + (out2 + (out3 + out4)))   ('same' padding, bias after each conv)
 * with 32, 64, 128, 256 channels (112 → 56 → 28 → 14 → 7), then avgPool 7×7/2 'valid' → 1×1,
 * then fc: matMul [256, 136] + bias. The sums keep face-api's association order.
 */
import type { ModelOptions } from '../onnx/builder';
import { collectWeightKeys, type GraphBuildOptions, type LayerBuilder, type WeightKey } from './layers';
import { TfjsLayerBuilder, type FeatureMap } from './tfjs-layers';

export const FACEAPI_LANDMARKS_INPUT_SIZE = 112;
export const FACEAPI_LANDMARK_COUNT = 68;
const BLOCK_CHANNELS = [32, 64, 128, 256] as const;

export type FaceApiLandmarksBuildOptions = GraphBuildOptions & ModelOptions;

export function buildFaceApiLandmarks68(opts: FaceApiLandmarksBuildOptions = {}): Uint8Array {
  return constructLandmarks(opts).graph.toBytes(opts);
}

/** Every tensor of face_landmark_68_model-weights_manifest.json the graph consumes, with tfjs dims. */
export function faceApiLandmarks68Keys(): WeightKey[] {
  return collectWeightKeys(constructLandmarks);
}

function constructLandmarks(opts: GraphBuildOptions): LayerBuilder {
  const T = new TfjsLayerBuilder('faceapi_face_landmark_68', opts);
  const size = FACEAPI_LANDMARKS_INPUT_SIZE;
  let x = T.input('input', 3, size, size);
  BLOCK_CHANNELS.forEach((channels, i) => {
    x = denseBlock4(T, x, `dense${i}`, channels, i === 0);
  });
  x = T.pool(x, 'avgpool', 'avg', 7, 2, 'valid');
  const flat = T.flatten(x, 'flatten');
  const out = T.dense(flat, 'fc', { weights: 'fc/weights', bias: 'fc/bias', outSize: 2 * FACEAPI_LANDMARK_COUNT });
  T.graph.node('Identity', [out.name], {}, { name: 'landmarks', outputs: ['landmarks'] });
  T.graph.output('landmarks', ['N', 2 * FACEAPI_LANDMARK_COUNT]);
  return T.L;
}

function separable(T: TfjsLayerBuilder, x: FeatureMap, prefix: string, channels: number, stride: number): FeatureMap {
  return T.separableConv2d(x, prefix, {
    depthwise: `${prefix}/depthwise_filter`,
    pointwise: `${prefix}/pointwise_filter`,
    bias: `${prefix}/bias`,
    kernel: 3,
    outChannels: channels,
    stride,
    padding: 'same',
  });
}

function denseBlock4(T: TfjsLayerBuilder, x: FeatureMap, prefix: string, channels: number, isFirstLayer: boolean): FeatureMap {
  const conv0 = isFirstLayer
    ? T.conv2d(x, `${prefix}/conv0`, { filters: `${prefix}/conv0/filters`, bias: `${prefix}/conv0/bias`, kernel: 3, outChannels: channels, stride: 2, padding: 'same' })
    : separable(T, x, `${prefix}/conv0`, channels, 2);
  const out1 = T.relu(conv0, `${prefix}/out1`);
  const out2 = separable(T, out1, `${prefix}/conv1`, channels, 1);
  const in3 = T.relu(T.add(out1, out2, `${prefix}/add3`), `${prefix}/in3`);
  const out3 = separable(T, in3, `${prefix}/conv2`, channels, 1);
  const in4 = T.relu(T.add(out1, T.add(out2, out3, `${prefix}/add4a`), `${prefix}/add4`), `${prefix}/in4`);
  const out4 = separable(T, in4, `${prefix}/conv3`, channels, 1);
  const sum = T.add(out1, T.add(out2, T.add(out3, out4, `${prefix}/add5b`), `${prefix}/add5a`), `${prefix}/add5`);
  return T.relu(sum, `${prefix}/out`);
}

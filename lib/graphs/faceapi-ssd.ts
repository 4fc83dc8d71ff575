/**
 * face-api's SSD-MobileNetV1 face detector (@vladmandic/face-api `src/ssdMobilenetv1/`, weights
 * `ssd_mobilenetv1_model`: TensorFlow's object-detection SSD MobileNetV1 trained on WIDER FACE), as
 * an ONNX graph up to the raw head outputs. Decoding and NMS are not in the graph.
 *
 * ## Input
 * `input` [N, 3, 512, 512], RGB, pixel / 127.5 − 1 (range [−1, 1]), as SsdMobilenetv1.forwardInput
 * computes it in float32 (`tf.sub(tf.div(x, 127.5), 1)`). The 512 × 512 image is made outside the
 * graph, by NetInput.toBatchTensor(512, isCenterInputs = false): the image (H × W) is padded with
 * zeros at the bottom (if W > H) or right (if H > W) to a square of side S = max(H, W), then, unless
 * S = 512, resized with tf.image.resizeBilinear(…, [512, 512], alignCorners = false,
 * halfPixelCenters = false) — TensorFlow's legacy bilinear mapping src = dst · S / 512 (no half-pixel
 * offset; the last source row/column repeats), values kept as float (not rounded to 8 bits).
 *
 * ## Outputs (before decoding, exactly face-api's tensors)
 * - `box_encodings` [N, 5118, 4]: predictionLayer's `boxPredictions` ([N, A, 1, 4] there), per anchor
 *   (ty, tx, th, tw) — TensorFlow's box-coder order, y first.
 * - `scores` [N, 5118, 3]: predictionLayer's `classPredictions`, per anchor three class logits
 *   (0: background, 1: face, 2: an unused extra class). Only logit 1 is used.
 * Anchor order: the six feature maps in turn — conv11 (32 × 32, 3 anchors per cell), the backbone
 * output (16 × 16, 6), then the extra layers' 8 × 8, 4 × 4, 2 × 2 and 1 × 1 (6 each) — and within a map
 * row, column, anchor (TensorFlow's NHWC reshape): 3072 + 1536 + 384 + 96 + 24 + 6 = 5118.
 *
 * ## Anchors
 * The weights carry them: `Output/extra_dim` [1, 5118, 4], per anchor (ymin, xmin, ymax, xmax)
 * normalised to the 512 × 512 input (some extend past [0, 1]). {@link faceApiSsdAnchors} returns them in
 * that anchor order as (cx, cy, w, h) — the layout native/vision/priors.h `DecodeSsd` reads —
 * computed in float32 exactly as face-api's outputLayer does (h = ymax − ymin, cy = ymin + h / 2, …),
 * so that the decoding below gives face-api's numbers; `format: 'corners'` returns the tensor as is.
 *
 * ## Post-processing face-api applies (SsdMobilenetv1.locateFaces, outputLayer, nonMaxSuppression)
 * 1. Score: s = sigmoid(scores[a][1]) = 1 / (1 + exp(−logit)) (float32).
 * 2. Decode (float32, scale factors 10, 10, 5, 5), anchor (cx, cy, w, h), encoding (ty, tx, th, tw):
 *      cy' = ty / 10 · h + cy,  cx' = tx / 10 · w + cx,
 *      hh = exp(th / 5) · h / 2,  hw = exp(tw / 5) · w / 2,
 *      box = (ymin, xmin, ymax, xmax) = (cy' − hh, cx' − hw, cy' + hh, cx' + hw)  (normalised, not clipped)
 *    = DecodeSsd with scale_x = scale_y = 10, scale_w = scale_h = 5, yx_order = true, score_stride = 3,
 *    score_index = 1, score_sigmoid = true (and clip = false, see 4).
 * 3. NMS (nonMaxSuppression, minConfidence default 0.5, IoU threshold 0.5, maxResults default 100):
 *    candidates are the anchors with s > minConfidence (strict), sorted by s descending (a stable sort:
 *    ties keep anchor order); each is kept unless its IoU with an already kept box is > 0.5 (strict),
 *    until maxResults are kept. IoU is computed on the unclipped normalised boxes, each box's corners
 *    ordered by min/max first, and is 0 when either area is ≤ 0. (This is plain greedy NMS.)
 * 4. Clip, after NMS and one-sided: top = max(0, ymin), left = max(0, xmin), bottom = min(1, ymax),
 *    right = min(1, xmax) — normalised to the padded square.
 * 5. To image pixels: with the image W × H and S = max(W, H), face-api's reshaped size is
 *    rw = round(W · 512 / S), rh = round(H · 512 / S) and it multiplies x by 512 / rw and y by 512 / rh
 *    (relative to the image), then by W and H: x_px = x · 512 / rw · W, y_px = y · 512 / rh · H. This is
 *    x · S except for face-api's rounding of rw, rh, which is not negligible: for a 548 × 342 image
 *    rh = 320 and y_px = y · 547.2 instead of y · 548, up to 0.8 px apart — use face-api's formula to
 *    match it. No offset: the padding is at the bottom / right. Boxes may extend into the padding
 *    (past W or H); they are not clipped there. The FaceDetection's score is s; its box is
 *    (left, top, right − left, bottom − top) in pixels.
 * DecodeSsd clamps both ends of a box before NMS when clip = true; to match face-api exactly, decode
 * unclipped, run NMS, then clamp as in 4 (two-sided clamping differs only for a box lying entirely
 * outside [0, 1], which cannot pass the threshold in practice).
 *
 * ## The network (all convolutions TensorFlow 'same' padding)
 * MobileNetV1 (×1.0): conv_0 3 × 3 / 2, 32, + bias, ReLU6; then 13 pairs of depthwise 3 × 3 (stride 2 at
 * pairs 2, 4, 6, 12) + batchNorm (ε = 0.001 as float32) + ReLU6 and pointwise 1 × 1 + bias + ReLU6, to
 * 64, 128, 128, 256, 256, 512, 512 ×5, 1024, 1024 channels. 512 → 256 → 128 → 64 → 32 → 16; conv11 (pair
 * 11's output) is 32 × 32 × 512. Extra layers on the 16 × 16 × 1024 output: 1 × 1 256 → 3 × 3 / 2 512 →
 * 1 × 1 128 → 3 × 3 / 2 256 → 1 × 1 128 → 3 × 3 / 2 256 → 1 × 1 64 → 3 × 3 / 2 128 (each + bias + ReLU6).
 * Box predictors (1 × 1 conv + bias, no activation) on conv11, the output, and extra layers 1, 3, 5, 7:
 * 4·k box channels and 3·k class channels with k = 3, 6, 6, 6, 6, 6 anchors per cell.
 */
import type { ModelOptions } from '../onnx/builder';
import { collectWeightKeys, type GraphBuildOptions, type LayerBuilder, type WeightKey, type WeightTensor } from './layers';
import { TfjsLayerBuilder, type FeatureMap } from './tfjs-layers';

export const FACEAPI_SSD_INPUT_SIZE = 512;
export const FACEAPI_SSD_ANCHOR_COUNT = 5118;
/** Class logits per anchor in `scores` (background, face, unused); the face score is sigmoid(logit 1). */
export const FACEAPI_SSD_CLASSES = 3;
export const FACEAPI_SSD_FACE_CLASS = 1;
/** The manifest tensor holding the anchors, [1, 5118, 4] (ymin, xmin, ymax, xmax). */
export const FACEAPI_SSD_ANCHORS_KEY = 'Output/extra_dim';
/** TensorFlow's box-coder scale factors face-api decodes with: ty, tx / 10, th, tw / 5. */
export const FACEAPI_SSD_BOX_SCALES = { y: 10, x: 10, h: 5, w: 5 } as const;
/** face-api's defaults (SsdMobilenetv1Options, locateFaces). */
export const FACEAPI_SSD_DEFAULTS = { minConfidence: 0.5, iouThreshold: 0.5, maxResults: 100 } as const;
/** Input normalisation: x / 127.5 − 1, i.e. (x − mean) / std with these. */
export const FACEAPI_SSD_MEAN = 127.5;
export const FACEAPI_SSD_STD = 127.5;

/** tf.batchNorm's epsilon in mobileNetV1.ts (0.001 as float32). */
const BN_EPSILON = 0.0010000000474974513;
/** Pairs 1..13: output channels and the depthwise stride. */
const PAIRS: readonly (readonly [number, number])[] = [
  [64, 1], [128, 2], [128, 1], [256, 2], [256, 1], [512, 2], [512, 1], [512, 1], [512, 1], [512, 1], [512, 1], [1024, 2], [1024, 1],
];
/** Extra layers Prediction/Conv2d_0..7: output channels, kernel, stride. */
const EXTRA: readonly (readonly [number, number, number])[] = [
  [256, 1, 1], [512, 3, 2], [128, 1, 1], [256, 3, 2], [128, 1, 1], [256, 3, 2], [64, 1, 1], [128, 3, 2],
];
const ANCHORS_PER_CELL = [3, 6, 6, 6, 6, 6] as const;

export type FaceApiSsdBuildOptions = GraphBuildOptions & ModelOptions;

/** The ONNX graph: `input` [N, 3, 512, 512] → `box_encodings` [N, 5118, 4], `scores` [N, 5118, 3]. */
export function buildFaceApiSsd(opts: FaceApiSsdBuildOptions = {}): Uint8Array {
  return constructSsd(opts).graph.toBytes(opts);
}

/**
 * Every tensor of ssd_mobilenetv1_model-weights_manifest.json the graph consumes, with tfjs dims
 * (not the anchors, {@link FACEAPI_SSD_ANCHORS_KEY}, nor the manifest's unused int32 / scalar leftovers
 * of the TensorFlow export).
 */
export function faceApiSsdKeys(): WeightKey[] {
  return collectWeightKeys(constructSsd);
}

export interface FaceApiSsdAnchorOptions {
  /**
   * 'center' (default): (cx, cy, w, h) as DecodeSsd reads them, computed in float32 as face-api's
   * decoder does; 'corners': the manifest's (ymin, xmin, ymax, xmax).
   */
  format?: 'center' | 'corners';
}

/**
 * The 5118 anchors, normalised to the 512 × 512 input, in the order of the graph's outputs
 * (see the file header), as a Float32Array [5118 × 4].
 *
 * @param weights the manifest's tensors (a map such as readTfjsWeights().tensors, or a lookup)
 * @throws RangeError when `Output/extra_dim` is missing, has another shape, or holds an anchor that
 *   is not finite or whose width or height is not positive
 */
export function faceApiSsdAnchors(
  weights: ReadonlyMap<string, WeightTensor> | ((key: string) => WeightTensor | undefined),
  opts: FaceApiSsdAnchorOptions = {},
): Float32Array {
  const format = opts.format ?? 'center';
  if (format !== 'center' && format !== 'corners') throw new TypeError(`Expected 'center' or 'corners' for format but received ${String(format)}`);
  const key = FACEAPI_SSD_ANCHORS_KEY;
  const dims = [1, FACEAPI_SSD_ANCHOR_COUNT, 4];
  const tensor = typeof weights === 'function' ? weights(key) : weights.get(key);
  if (tensor === undefined) throw new RangeError(`Expected a tensor for the anchors '${key}' [${dims.join(', ')}] but received none`);
  if (tensor.dims.length !== 3 || tensor.dims.some((d, i) => d !== dims[i]) || tensor.data.length !== FACEAPI_SSD_ANCHOR_COUNT * 4) {
    throw new RangeError(`Expected dims [${dims.join(', ')}] for the anchors '${key}' but received [${tensor.dims.join(', ')}]`);
  }
  const src = tensor.data;
  const out = new Float32Array(FACEAPI_SSD_ANCHOR_COUNT * 4);
  const f = Math.fround;
  for (let a = 0; a < FACEAPI_SSD_ANCHOR_COUNT; a++) {
    const [ymin, xmin, ymax, xmax] = [src[4 * a]!, src[4 * a + 1]!, src[4 * a + 2]!, src[4 * a + 3]!];
    const h = f(ymax - ymin);
    const w = f(xmax - xmin);
    if (![ymin, xmin, ymax, xmax].every(Number.isFinite) || !(h > 0) || !(w > 0)) {
      throw new RangeError(`Expected an anchor (ymin, xmin, ymax, xmax) of positive size for anchor ${a} of '${key}' but received (${ymin}, ${xmin}, ${ymax}, ${xmax})`);
    }
    if (format === 'corners') out.set([ymin, xmin, ymax, xmax], 4 * a);
    else out.set([f(xmin + f(w / 2)), f(ymin + f(h / 2)), w, h], 4 * a);
  }
  return out;
}

function constructSsd(opts: GraphBuildOptions): LayerBuilder {
  const T = new TfjsLayerBuilder('faceapi_ssd_mobilenetv1', opts);
  const size = FACEAPI_SSD_INPUT_SIZE;
  let x = T.input('input', 3, size, size);

  // MobileNetV1.
  x = pointwise(T, x, 'MobilenetV1/Conv2d_0_pointwise', 32, 3, 2);
  let conv11: FeatureMap | undefined;
  PAIRS.forEach(([channels, stride], i) => {
    const idx = i + 1;
    const dw = `MobilenetV1/Conv2d_${idx}_depthwise`;
    x = T.conv2d(x, dw, { filters: `${dw}/depthwise_weights`, kernel: 3, stride, padding: 'same', depthwise: true });
    x = T.batchNorm(x, `${dw}/BatchNorm`, {
      mean: `${dw}/BatchNorm/moving_mean`,
      variance: `${dw}/BatchNorm/moving_variance`,
      gamma: `${dw}/BatchNorm/gamma`,
      beta: `${dw}/BatchNorm/beta`,
      epsilon: BN_EPSILON,
    });
    x = T.relu6(x, `${dw}/relu6`);
    x = pointwise(T, x, `MobilenetV1/Conv2d_${idx}_pointwise`, channels, 1, 1);
    if (idx === 11) conv11 = x;
  });

  // Extra feature layers.
  const extra: FeatureMap[] = [];
  let y = x;
  EXTRA.forEach(([channels, kernel, stride], i) => {
    y = pointwise(T, y, `Prediction/Conv2d_${i}_pointwise`, channels, kernel, stride);
    extra.push(y);
  });

  // Box predictors on conv11, the backbone output, and extra layers 1, 3, 5, 7.
  const maps = [conv11!, x, extra[1]!, extra[3]!, extra[5]!, extra[7]!];
  const g = T.graph;
  const boxes: string[] = [];
  const classes: string[] = [];
  let anchors = 0;
  maps.forEach((map, i) => {
    const k = ANCHORS_PER_CELL[i]!;
    anchors += map.height * map.width * k;
    const head = (what: 'BoxEncodingPredictor' | 'ClassPredictor', perAnchor: number): string => {
      const prefix = `Prediction/BoxPredictor_${i}/${what}`;
      const conv = T.conv2d(map, prefix, { filters: `${prefix}/weights`, bias: `${prefix}/biases`, kernel: 1, outChannels: k * perAnchor, stride: 1, padding: 'same' });
      const nhwc = g.node('Transpose', [conv.name], { perm: [0, 2, 3, 1] }, { name: `${prefix}/nhwc` })[0]!;
      return g.node('Reshape', [nhwc, T.L.int64Vector([0, -1, perAnchor])], {}, { name: `${prefix}/reshape` })[0]!;
    };
    boxes.push(head('BoxEncodingPredictor', 4));
    classes.push(head('ClassPredictor', FACEAPI_SSD_CLASSES));
  });
  if (anchors !== FACEAPI_SSD_ANCHOR_COUNT) throw new RangeError(`Expected ${FACEAPI_SSD_ANCHOR_COUNT} anchors but the feature maps give ${anchors}`);
  g.node('Concat', boxes, { axis: 1 }, { name: 'concat_box_encodings', outputs: ['box_encodings'] });
  g.node('Concat', classes, { axis: 1 }, { name: 'concat_scores', outputs: ['scores'] });
  g.output('box_encodings', ['N', FACEAPI_SSD_ANCHOR_COUNT, 4]);
  g.output('scores', ['N', FACEAPI_SSD_ANCHOR_COUNT, FACEAPI_SSD_CLASSES]);
  return T.L;
}

/** face-api's pointwiseConvLayer: conv2d 'same' (any kernel, despite the name) + convolution_bn_offset + ReLU6. */
function pointwise(T: TfjsLayerBuilder, x: FeatureMap, prefix: string, outChannels: number, kernel: number, stride: number): FeatureMap {
  const y = T.conv2d(x, prefix, { filters: `${prefix}/weights`, bias: `${prefix}/convolution_bn_offset`, kernel, outChannels, stride, padding: 'same' });
  return T.relu6(y, `${prefix}/relu6`);
}

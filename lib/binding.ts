/**
 * Loads the native addon: a local build (build/Release) first, then a prebuild for this platform
 * (node-gyp-build), and otherwise one error that lists the fixes.
 */
import * as path from 'node:path';
import { FaceError } from './errors';

export interface NativeValueInfo {
  name: string;
  dims: (number | string)[];
  hasShape: boolean;
}

export interface NativeTensor {
  data: Float32Array;
  dims: number[];
}

export interface NativeModel {
  readonly inputs: NativeValueInfo[];
  readonly outputs: NativeValueInfo[];
  readonly threads: number;
  readonly device: 'cpu' | 'cuda';
  readonly precision: 'fp32' | 'fp16';
  run(inputs: NativeTensor[]): Promise<NativeTensor[]>;
  dispose(): void;
}

export interface NativeDevice {
  name: string;
  available: boolean;
  detail: string;
}

/** A detector's fixed settings, copied by the native side at creation (lib/pipeline/face-engine.ts builds it). */
export interface NativeDetectorConfig {
  /** The network input size; 0, 0 = each frame at its original size. */
  inputWidth: number;
  inputHeight: number;
  /** Which decoding follows the network: RetinaFace priors, or SSD with anchors from the weights. */
  decoder: 'retinaface' | 'ssd';
  /**
   * When resizing to inputWidth × inputHeight: 'letterbox' keeps the aspect ratio, scales to fit and
   * centres on padValue; 'stretch' scales each axis; 'pad-square' is face-api's: pad the frame with
   * padValue at the bottom / right to a square of its longer side, then TensorFlow's legacy bilinear
   * resize (no half-pixel offset, values kept as float) to the input size.
   */
  resizeMode: 'letterbox' | 'stretch' | 'pad-square';
  /** 3 values, the padding colour in RGB pixel units (0–255), before normalisation. */
  padValue: number[];
  /** Per channel, applied as (x − mean) / std in colorOrder. */
  colorOrder: 'RGB' | 'BGR';
  mean: number[];
  std: number[];
  /** RetinaFace priors and decoding (any values for 'ssd'). */
  minSizes: number[][];
  steps: number[];
  variances: number[];
  clip: boolean;
  /** 'ssd': [A × 4] anchors (cx, cy, w, h) normalised to the input, in output row order; empty for 'retinaface'. */
  anchors: Float32Array;
  /** 'ssd' decoding (see SsdDecoder in lib/models/descriptor.ts); any values for 'retinaface'. */
  ssd: { scaleXY: number; scaleWH: number; yxOrder: boolean; scoreStride: number; scoreIndex: number; scoreSigmoid: boolean };
  scoreThreshold: number;
  nmsThreshold: number;
  /** Whether NMS computes areas with +1 (py_cpu_nms, RetinaFace) or not (face-api). */
  nmsPlusOne: boolean;
  /** 0 = no limit. */
  maxFaces: number;
  /** NMS considers only the best this many candidates; 0 = all. */
  preNmsTopK: number;
  /** In source-frame pixels; 0 = none. */
  minFaceSize: number;
  inputName: string;
  boxesOutput: string;
  scoresOutput: string;
  /** '' when the detector has no landmarks (then NativeFace.landmarks is []). */
  landmarksOutput: string;
}

/** An 8-bit frame, interleaved HWC, tightly packed (data.length = width · height · channels). */
export interface NativeFrame {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3 | 4;
}

/** Pixel normalisation of a stage's network input: (x − mean) / std per channel, in colorOrder. */
interface NativeNormalization {
  colorOrder: 'RGB' | 'BGR';
  mean: number[];
  std: number[];
}

/** The 68-point landmark stage (face-api's FaceLandmark68Net: 136 outputs in 0–1 of its crop). */
export interface NativeLandmarkerConfig extends NativeNormalization {
  inputWidth: number;
  inputHeight: number;
  /** 3 values, RGB (0–255): the colour the square crop is padded with. */
  padValue: number[];
  output: string;
  /** Run again on the crop turned upright when the eye line tilts by more than this (0 = never). */
  uprightDegrees: number;
  /** Find each face's quarter turn first (sideways and upside-down faces; 8 more passes per face). */
  anyRotation: boolean;
}

/** The embedding stage: how each face is cut out and aligned, and the network's output. */
export interface NativeEmbedderConfig extends NativeNormalization {
  inputWidth: number;
  inputHeight: number;
  /** 3 values, RGB (0–255): the colour read outside the frame. */
  padValue: number[];
  output: string;
  alignment: 'similarity' | 'eye-line' | 'none';
  /** 'similarity': the template points as x, y pairs in input pixels; [] otherwise. */
  template: number[];
  /** Whether the template stands for 68-point landmarks (from firstPoint on) or the five points. */
  uses68: boolean;
  firstPoint: number;
  /** Embed each crop and its mirror image, and concatenate the two outputs (twice the length). */
  flip: boolean;
}

export interface NativeStage<Config> {
  bytes: Uint8Array;
  config: Config;
}

export interface NativeFace {
  /** x1, y1, x2, y2 in pixels of the frame. */
  box: [number, number, number, number];
  score: number;
  /** 10 values: left eye, right eye, nose, left mouth corner, right mouth corner as x, y; [] when no stage gives them. */
  landmarks: number[];
  /** 136 values (68 x, y pairs) from the landmark stage; [] without one. */
  landmarks68: number[];
  /** L2-normalised; present when run with embed = true. */
  embedding?: Float32Array;
}

export interface NativePipeline {
  /** One list per frame, by descending score; embed: align and embed every face too. */
  run(frames: NativeFrame[], embed: boolean): Promise<NativeFace[][]>;
  /** The embedder's output size (0 without an embedder or when the model leaves it symbolic). */
  readonly embeddingSize: number;
  dispose(): void;
}

export interface NativeBinding {
  loadModel(bytes: Uint8Array, threads: number, device: 'cpu' | 'cuda', precision: 'fp32' | 'fp16'): Promise<NativeModel>;
  devices(): NativeDevice[];
  createPipeline(
    detector: NativeStage<NativeDetectorConfig>,
    landmarks: NativeStage<NativeLandmarkerConfig> | null,
    embedder: NativeStage<NativeEmbedderConfig> | null,
    threads: number,
    device: 'cpu' | 'cuda',
    precision: 'fp32' | 'fp16',
  ): Promise<NativePipeline>;
  /**
   * Euclidean distances from each query row to every gallery row (both row-major, `dim` wide):
   * the whole matrix when `all`, and the `topK` nearest per query (nearest first; index −1 past the
   * gallery's end).
   */
  distances(queries: Float32Array, gallery: Float32Array, dim: number, topK: number, all: boolean): Promise<{ distances?: Float32Array; topIndex: Int32Array; topValue: Float32Array }>;
}

export const packageRoot = path.resolve(__dirname, '..');

let cached: NativeBinding | undefined;

export function binding(): NativeBinding {
  if (cached) return cached;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => NativeBinding;
    cached = load(packageRoot);
    return cached;
  } catch (cause) {
    throw new FaceError(
      'E_NATIVE',
      `facesight's native addon could not be loaded for ${process.platform}-${process.arch} (Node ${process.version}): ` +
        `${(cause as Error)?.message ?? cause}\n` +
        'Fixes: (1) reinstall so a prebuilt binary is picked up: `npm rebuild facesight`; ' +
        '(2) build it from source: install CMake ≥ 3.18 and a C++17 compiler, then `npm run build:native` in the package; ' +
        '(3) set FACESIGHT_CUDA=0 before building if the CUDA toolkit is broken.',
      { cause },
    );
  }
}

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

export interface NativeFace {
  /** x1, y1, x2, y2 in pixels of the frame. */
  box: [number, number, number, number];
  score: number;
  /** 10 values: left eye, right eye, nose, left mouth corner, right mouth corner as x, y; [] without a landmarks output. */
  landmarks: number[];
}

export interface NativeDetector {
  /** One list per frame, by descending score. */
  detect(frames: NativeFrame[]): Promise<NativeFace[][]>;
  dispose(): void;
}

export interface NativeBinding {
  loadModel(bytes: Uint8Array, threads: number): Promise<NativeModel>;
  devices(): NativeDevice[];
  /** Absent in addons built before the detector pipeline. */
  createDetector(modelBytes: Uint8Array, config: NativeDetectorConfig, threads: number): Promise<NativeDetector>;
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

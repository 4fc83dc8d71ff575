/**
 * FaceEngine: face detection on images, end to end. JS decodes the images (sharp) and validates
 * everything; one native call per batch then letterboxes/normalises, runs the detector network,
 * decodes the anchors and applies NMS, off the event loop.
 *
 * ```ts
 * const engine = await FaceEngine.create();               // face-api's SSD, shipped: no files needed
 * // or: FaceEngine.create({ detector: 'retinaface-mnet025=/path/mobilenet0.25_Final.pth' }) (with landmarks)
 * const faces = await engine.detect('group.jpg');          // DetectedFace[]
 * const perImage = await engine.detect([a, b, c]);         // DetectedFace[][]
 * engine.dispose();
 * ```
 */
import * as fs from 'node:fs/promises';
import { binding, type NativeDetector, type NativeDetectorConfig, type NativeFace } from '../binding';
import { defaultThreads, resolveDevice, type DeviceName } from '../engine';
import { FaceError, FaceRangeError, FaceTypeError, describeValue, fromNative, invalidRange, invalidType } from '../errors';
import { convertModel, faceApiFolder } from '../convert';
import { cachedFaceApiModel, loadFaceApiSsdAnchors } from '../convert/faceapi';
import type { ModelDescriptor, RetinaFaceDecoder } from '../models/descriptor';
import { locateWeights, resolveModelSpec } from '../models/registry';
import { checkLimitInputPixels, decodeImage, decodeImages, type ImageInput } from './image';

/** face-api's SSD-MobileNetV1: its weights ship in the @vladmandic/face-api dependency. */
export const DEFAULT_DETECTOR = 'faceapi-ssd';

export interface DetectionOptions {
  /** Keep faces whose score is at least this (0–1). Default: the detector's (0.5 for both SSD and RetinaFace). */
  threshold?: number;
  /** Drop a face whose box overlaps a better one by IoU above this (0–1). Default: the detector's (0.5 SSD, 0.4 RetinaFace). */
  nmsThreshold?: number;
  /**
   * The network input: 'original' runs each image at its own size (best for small faces, slowest
   * on large images); a number N letterboxes each image into N × N (aspect ratio kept, bars added).
   * Default: 'original' for detectors that take any size, the descriptor's size otherwise.
   */
  inputSize?: number | 'original';
  /** Drop faces smaller than this many pixels (box side in the source image). Default 0 (none). */
  minFaceSize?: number;
  /** Keep at most this many faces per image, the best ones (0 = no limit). Default: the detector's (100 SSD, as face-api; 0 RetinaFace). */
  maxFaces?: number;
}

export interface FaceEngineOptions {
  /** Where to run. 'auto' picks CUDA when usable, else the CPU. Default 'cpu'. */
  device?: DeviceName;
  /** CPU threads (default: every core this process may use). */
  threads?: number;
  /**
   * The detector: a model name or 'name=path' with the path of its weights (the published
   * checkpoint, an ONNX file, or for face-api models the manifest or its folder). Default
   * 'faceapi-ssd' (face-api's SSD-MobileNetV1, shipped in @vladmandic/face-api; no landmarks);
   * 'retinaface-mnet025' gives five landmarks per face but needs its weights.
   */
  detector?: string;
  detection?: DetectionOptions;
  /** Refuse encoded images of more pixels than this (decompression-bomb guard). Default 100 000 000. */
  limitInputPixels?: number;
}

export interface Point {
  x: number;
  y: number;
}

export interface DetectedFace {
  /** In pixels of the source image (after EXIF orientation); may reach slightly past its edges. */
  box: { x: number; y: number; width: number; height: number };
  /** Face probability, 0–1. */
  score: number;
  /**
   * Left eye, right eye, nose tip, left mouth corner, right mouth corner (left/right as seen in the
   * image), from detectors that have them (RetinaFace); an empty array from those that do not (the
   * default face-api SSD: its 68-point landmark net is a separate model).
   */
  landmarks: [Point, Point, Point, Point, Point] | [];
}

/** The settings an engine runs with, after defaults. */
export interface ResolvedDetection {
  threshold: number;
  nmsThreshold: number;
  inputSize: number | 'original' | { width: number; height: number };
  minFaceSize: number;
  maxFaces: number;
}

const ENGINE_KEYS = ['device', 'threads', 'detector', 'detection', 'limitInputPixels'] as const;
const DETECTION_KEYS = ['threshold', 'nmsThreshold', 'inputSize', 'minFaceSize', 'maxFaces'] as const;
const MAX_INPUT_SIZE = 8192;

function checkKeys(value: object, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new FaceRangeError(`Expected only the options ${allowed.join(', ')} for ${what} but received an unknown option '${key}'`);
  }
}

function unit(value: unknown, what: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidType('a number from 0 to 1', what, value);
  if (!(value >= 0 && value <= 1)) throw invalidRange('a number from 0 to 1', what, value);
  return value;
}

function nonNegativeInteger(value: unknown, what: string, expected: string): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number') throw invalidType(expected, what, value);
  if (!Number.isSafeInteger(value) || value < 0) throw invalidRange(expected, what, value);
  return value;
}

function resolveDetection(value: unknown, descriptor: ModelDescriptor): ResolvedDetection {
  if (value === undefined) value = {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidType('an object', 'options.detection', value);
  checkKeys(value, DETECTION_KEYS, 'options.detection');
  const o = value as DetectionOptions;
  const defaults = descriptor.detection ?? { scoreThreshold: 0.5, nmsThreshold: 0.4 };
  const threshold = unit(o.threshold, 'options.detection.threshold', defaults.scoreThreshold);
  const nmsThreshold = unit(o.nmsThreshold, 'options.detection.nmsThreshold', defaults.nmsThreshold);

  let minFaceSize = 0;
  if (o.minFaceSize !== undefined) {
    if (typeof o.minFaceSize !== 'number') throw invalidType('a non-negative number (pixels)', 'options.detection.minFaceSize', o.minFaceSize);
    if (!(o.minFaceSize >= 0 && Number.isFinite(o.minFaceSize))) throw invalidRange('a non-negative number (pixels)', 'options.detection.minFaceSize', o.minFaceSize);
    minFaceSize = o.minFaceSize;
  }
  const maxFaces = o.maxFaces === undefined ? (descriptor.detection?.maxFaces ?? 0) : nonNegativeInteger(o.maxFaces, 'options.detection.maxFaces', 'a non-negative integer (0 = no limit)');

  const size = descriptor.input.size;
  const sizeExpected = `'original' or an integer from 32 to ${MAX_INPUT_SIZE} (pixels)`;
  let inputSize: ResolvedDetection['inputSize'];
  if (o.inputSize === undefined) {
    inputSize = size.kind === 'fixed' ? { width: size.width, height: size.height } : 'original';
  } else if (o.inputSize === 'original') {
    if (size.kind === 'fixed') {
      throw invalidRange(`the network's size ${size.width} (it takes ${size.width} × ${size.height} only)`, 'options.detection.inputSize', o.inputSize);
    }
    inputSize = 'original';
  } else if (typeof o.inputSize === 'number') {
    if (!Number.isInteger(o.inputSize) || o.inputSize < 32 || o.inputSize > MAX_INPUT_SIZE) throw invalidRange(sizeExpected, 'options.detection.inputSize', o.inputSize);
    if (size.kind === 'fixed' && (o.inputSize !== size.width || o.inputSize !== size.height)) {
      throw invalidRange(`the network's size ${size.width} (it takes ${size.width} × ${size.height} only)`, 'options.detection.inputSize', o.inputSize);
    }
    inputSize = o.inputSize;
  } else {
    throw typeof o.inputSize === 'string' ? invalidRange(sizeExpected, 'options.detection.inputSize', o.inputSize) : invalidType(sizeExpected, 'options.detection.inputSize', o.inputSize);
  }
  return { threshold, nmsThreshold, inputSize, minFaceSize, maxFaces };
}

/** The detector's descriptor, checked for what this pipeline can run. */
function checkDetector(descriptor: ModelDescriptor, spec: string): void {
  if (descriptor.role !== 'detector') {
    throw new FaceRangeError(`Expected a face detector model for options.detector but received '${spec}' (a model of role '${descriptor.role}')`);
  }
  const kind = descriptor.decoder?.kind;
  if (kind === 'ssd') {
    // The anchors are read from face-api's SSD weights (loadFaceApiSsdAnchors).
    if (descriptor.weights.converter !== 'faceapi-ssd') {
      throw new FaceError('E_MODEL', `Detector '${descriptor.name}' has an SSD decoder with anchors from its weights: FaceEngine reads SSD anchors from face-api's SSD weights only (weights.converter 'faceapi-ssd')`);
    }
    if (descriptor.input.size.kind !== 'fixed') {
      throw new FaceError('E_MODEL', `Detector '${descriptor.name}' has an SSD decoder: its input.size must be kind 'fixed'`);
    }
    return;
  }
  if (kind !== 'retinaface') {
    throw new FaceError('E_MODEL', `Detector '${descriptor.name}' has decoder kind '${kind}': FaceEngine runs RetinaFace and SSD detectors only`);
  }
  if (!descriptor.outputs.landmarks) {
    throw new FaceError('E_MODEL', `Detector '${descriptor.name}' has no landmarks output: FaceEngine needs the five landmarks of each face`);
  }
  // The native prior generator's limits (native/vision/priors.h: kMaxPriorLevels, kMaxPriorSizes).
  const decoder = descriptor.decoder as RetinaFaceDecoder;
  if (decoder.minSizes.length > 6 || decoder.minSizes.some((level) => level.length > 4)) {
    throw new FaceError('E_MODEL', `Detector '${descriptor.name}' has ${decoder.minSizes.length} prior levels of up to ${Math.max(...decoder.minSizes.map((l) => l.length))} sizes: at most 6 levels of 4 sizes are supported`);
  }
  if (descriptor.input.size.kind === 'any' && descriptor.input.size.scale !== 1) {
    throw new FaceError('E_MODEL', `Detector '${descriptor.name}' has input.size.scale ${descriptor.input.size.scale}: only scale 1 is supported (use options.detection.inputSize to resize)`);
  }
}

/**
 * The native detector's settings. `anchors`: the SSD anchors (loadFaceApiSsdAnchors) for an 'ssd'
 * decoder; unused for RetinaFace.
 */
export function nativeConfig(descriptor: ModelDescriptor, detection: ResolvedDetection, anchors: Float32Array = new Float32Array(0)): NativeDetectorConfig {
  const decoder = descriptor.decoder!;
  const size = descriptor.input.size;
  let inputWidth = 0;
  let inputHeight = 0;
  let resizeMode: NativeDetectorConfig['resizeMode'] = 'letterbox';
  if (typeof detection.inputSize === 'number') {
    inputWidth = inputHeight = detection.inputSize;
  } else if (typeof detection.inputSize === 'object') {
    inputWidth = detection.inputSize.width;
    inputHeight = detection.inputSize.height;
  }
  if (size.kind === 'fixed') resizeMode = size.resize;
  // Letterbox bars default to grey 128 (RetinaFace's letterbox), face-api's padding to black.
  const padValue = size.kind === 'fixed' && size.padColor ? [...size.padColor] : resizeMode === 'pad-square' ? [0, 0, 0] : [128, 128, 128];
  const common = {
    inputWidth,
    inputHeight,
    resizeMode,
    padValue,
    colorOrder: descriptor.input.colorOrder,
    mean: [...descriptor.input.mean],
    std: [...descriptor.input.std],
    scoreThreshold: detection.threshold,
    nmsThreshold: detection.nmsThreshold,
    maxFaces: detection.maxFaces,
    minFaceSize: detection.minFaceSize,
    inputName: descriptor.input.name,
    boxesOutput: descriptor.outputs.boxes!,
    scoresOutput: descriptor.outputs.scores!,
    landmarksOutput: descriptor.outputs.landmarks ?? '',
  };
  if (decoder.kind === 'ssd') {
    const { scaleXY, scaleWH, yxOrder, scoreStride, scoreIndex, scoreSigmoid } = decoder;
    return {
      ...common,
      decoder: 'ssd',
      minSizes: [],
      steps: [],
      variances: [0.1, 0.2],
      clip: false, // face-api clamps after NMS, one-sided (the native SSD decoder does that itself)
      anchors,
      ssd: { scaleXY, scaleWH, yxOrder, scoreStride, scoreIndex, scoreSigmoid },
      nmsPlusOne: false,
    };
  }
  return {
    ...common,
    decoder: 'retinaface',
    minSizes: decoder.minSizes.map((level) => [...level]),
    steps: [...decoder.steps],
    variances: [...decoder.variances],
    clip: decoder.clip,
    anchors: new Float32Array(0),
    ssd: { scaleXY: 1, scaleWH: 1, yxOrder: false, scoreStride: 2, scoreIndex: 1, scoreSigmoid: false },
    nmsPlusOne: true, // Pytorch_Retinaface's py_cpu_nms
  };
}

// Converted detectors, per process: weights path + size + mtime → ONNX bytes.
const onnxCache = new Map<string, Promise<Uint8Array>>();

async function detectorOnnx(descriptor: ModelDescriptor, weightsPath: string): Promise<Uint8Array> {
  let stat;
  try {
    stat = await fs.stat(weightsPath);
  } catch (cause) {
    throw new FaceError('E_MODEL', `Cannot read the weights of '${descriptor.name}' at ${weightsPath}: ${(cause as Error).message}`, { cause });
  }
  const key = `${descriptor.name}\0${weightsPath}\0${stat.size}\0${stat.mtimeMs}`;
  let job = onnxCache.get(key);
  if (!job) {
    const isOnnx = descriptor.weights.format === 'onnx' || weightsPath.toLowerCase().endsWith('.onnx');
    job = isOnnx ? fs.readFile(weightsPath).then((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) : convertModel(descriptor, weightsPath);
    onnxCache.set(key, job);
    job.catch(() => onnxCache.delete(key));
  }
  return job;
}

function missingWeights(descriptor: ModelDescriptor, looked: string | undefined): FaceError {
  const w = descriptor.weights;
  if (w.shipped) {
    return new FaceError(
      'E_MODEL',
      `No weights for detector '${descriptor.name}': they ship in the package ${w.package}, ` +
        (looked ? `but ${looked} is missing: reinstall it (\`npm install ${w.package}\`)` : `which is not installed: run \`npm install ${w.package}\``) +
        `, or give the weights' path as options.detector = '${descriptor.name}=/path/to/${w.file!.split('/').pop()}'`,
    );
  }
  const where = w.source.url ?? (w.source.repo ? `github.com/${w.source.repo}` : w.source.publisher);
  return new FaceError(
    'E_MODEL',
    `No weights for detector '${descriptor.name}'${looked ? ` (none at ${looked})` : ''}. facesight does not ship these weights: ` +
      `get ${w.source.file} (${w.source.publisher}, from ${where}${w.sha256 ? `, sha256 ${w.sha256}` : ''}) ` +
      `and give its path as options.detector = '${descriptor.name}=/path/to/${w.source.file.split('/').pop()}'` +
      (w.dataPath ? `, or set FACESIGHT_DATA to a folder holding ${w.dataPath}` : ''),
  );
}

function toFace(f: NativeFace): DetectedFace {
  const [x1, y1, x2, y2] = f.box;
  const l = f.landmarks;
  return {
    box: { x: x1, y: y1, width: x2 - x1, height: y2 - y1 },
    score: f.score,
    landmarks: l.length < 10 ? [] : [
      { x: l[0], y: l[1] },
      { x: l[2], y: l[3] },
      { x: l[4], y: l[5] },
      { x: l[6], y: l[7] },
      { x: l[8], y: l[9] },
    ],
  };
}

export class FaceEngine {
  readonly device: 'cpu';
  readonly threads: number;
  /** The detector model's name and where its weights were read from. */
  readonly detector: { readonly name: string; readonly weights: string };
  readonly detection: Readonly<ResolvedDetection>;
  readonly limitInputPixels: number;
  #native: NativeDetector | undefined;
  // Native detect calls run one at a time per engine (the native side serialises them anyway, and a
  // queued call would otherwise hold a libuv thread that image decoding needs); decoding overlaps.
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(native: NativeDetector, init: { device: 'cpu'; threads: number; detector: { name: string; weights: string }; detection: ResolvedDetection; limitInputPixels: number }) {
    this.#native = native;
    this.device = init.device;
    this.threads = init.threads;
    this.detector = Object.freeze(init.detector);
    this.detection = Object.freeze(init.detection);
    this.limitInputPixels = init.limitInputPixels;
  }

  /**
   * Loads (and converts, once per process) the detector and prepares the native pipeline.
   *
   * @throws FaceError E_INPUT (TypeError/RangeError) for a wrong option; E_MODEL for missing or bad
   *   weights; E_DEVICE for an unusable device; E_NATIVE when the addon has no detector pipeline
   */
  static async create(options: FaceEngineOptions = {}): Promise<FaceEngine> {
    if (typeof options !== 'object' || options === null || Array.isArray(options)) throw invalidType('an options object', 'FaceEngine.create(options)', options);
    checkKeys(options, ENGINE_KEYS, 'FaceEngine.create(options)');
    const threads = options.threads ?? defaultThreads();
    if (typeof threads !== 'number') throw invalidType('an integer from 1 to 256', 'options.threads', threads);
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw invalidRange('an integer from 1 to 256', 'options.threads', threads);
    const limitInputPixels = checkLimitInputPixels(options.limitInputPixels);
    const detectorSpec = options.detector ?? DEFAULT_DETECTOR;
    if (typeof detectorSpec !== 'string') throw invalidType("a model name or 'name=path'", 'options.detector', detectorSpec);
    let spec;
    try {
      spec = resolveModelSpec(detectorSpec);
    } catch (error) {
      // Name the option in argument errors ("... for options.detector but received ...").
      if (error instanceof FaceTypeError || error instanceof FaceRangeError) error.message = error.message.replace(' for the model ', ' for options.detector ');
      throw error;
    }
    const { descriptor } = spec;
    checkDetector(descriptor, detectorSpec);
    const detection = resolveDetection(options.detection, descriptor);
    const device = resolveDevice(options.device);

    const at = locateWeights(descriptor, spec.weightsPath);
    if (!at.present) {
      if (at.origin === 'user') throw new FaceError('E_MODEL', `Cannot find the weights of detector '${descriptor.name}': no file at ${at.path} (from options.detector '${detectorSpec}')`);
      throw missingWeights(descriptor, at.path);
    }
    const native = binding();
    let onnx: Uint8Array;
    let config: NativeDetectorConfig;
    if (descriptor.decoder?.kind === 'ssd') {
      // face-api's SSD: converted once and kept in the model cache; the anchors from the same weights.
      const folder = faceApiFolder('ssd', at.path!);
      [onnx, config] = await Promise.all([cachedFaceApiModel('ssd', folder), loadFaceApiSsdAnchors(folder).then((anchors) => nativeConfig(descriptor, detection, anchors))]);
    } else {
      onnx = await detectorOnnx(descriptor, at.path!);
      config = nativeConfig(descriptor, detection);
    }
    const callerStack = new Error();
    let detector: NativeDetector;
    try {
      detector = await native.createDetector(onnx, config, threads);
    } catch (error) {
      throw fromNative(error, callerStack);
    }
    return new FaceEngine(detector, { device, threads, detector: { name: descriptor.name, weights: at.path! }, detection, limitInputPixels });
  }

  /** Faces in one image, by descending score. */
  detect(input: ImageInput): Promise<DetectedFace[]>;
  /** Faces in each image of a batch (one list per image, in order); one native call for the batch. */
  detect(inputs: readonly ImageInput[]): Promise<DetectedFace[][]>;
  async detect(input: ImageInput | readonly ImageInput[]): Promise<DetectedFace[] | DetectedFace[][]> {
    this.#live();
    const batch = Array.isArray(input);
    const frames = batch
      ? await decodeImages(input as readonly ImageInput[], { limitInputPixels: this.limitInputPixels })
      : [await decodeImage(input as ImageInput, { limitInputPixels: this.limitInputPixels })];
    if (frames.length === 0) return [];
    const native = this.#live(); // disposed while decoding?
    const callerStack = new Error();
    const run = this.#queue.then(() => native.detect(frames));
    this.#queue = run.catch(() => undefined);
    let results: NativeFace[][];
    try {
      results = await run;
    } catch (error) {
      throw fromNative(error, callerStack);
    }
    if (!Array.isArray(results) || results.length !== frames.length) {
      throw new FaceError('E_INTERNAL', `The native detector returned ${describeValue(results)} for ${frames.length} frames`);
    }
    const faces = results.map((list) => list.map(toFace));
    return batch ? faces : faces[0];
  }

  /** Frees the native detector. Calls already started finish; later calls reject with E_STATE. */
  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  #live(): NativeDetector {
    if (!this.#native) throw new FaceError('E_STATE', 'The face engine has been disposed');
    return this.#native;
  }
}

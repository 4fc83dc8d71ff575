/**
 * FaceEngine: the recognition pipeline, end to end. JS decodes the images (sharp) and validates
 * everything; then one native call per batch detects the faces (resize, detector network, decode,
 * NMS), finds their landmarks, aligns and embeds them, off the event loop, with no tensor coming
 * back to JavaScript between stages.
 *
 * ```ts
 * const engine = await FaceEngine.create();                // face-api's SSD, landmarks and recognition: shipped
 * const faces = await engine.detect('group.jpg');           // DetectedFace[]
 * const embedded = await engine.embed(['a.jpg', 'b.jpg']); // EmbeddedFace[][]: one native call
 * const { same, distance } = await engine.verify('a.jpg', 'b.jpg');
 * const who = await engine.recognize('query.jpg', database); // RecognizedFace[] (name or 'Unknown')
 * engine.dispose();
 * ```
 */
import { binding, type NativeFace, type NativePipeline } from '../binding';
import { defaultThreads, resolveDevice, type DeviceName, type Precision } from '../engine';
import { FaceError, FaceRangeError, describeValue, fromNative, invalidRange, invalidType } from '../errors';
import type { ModelDescriptor } from '../models/descriptor';
import { euclideanDistance, largestFace } from './faces';
import { checkLimitInputPixels, decodeImage, decodeImages, type ImageInput } from './image';
import {
  alignmentNeeds68,
  checkDetector,
  detectorStage,
  embedderStage,
  landmarkStage,
  resolveStage,
  type Alignment,
  type ResolvedDetection,
} from './stages';

export type { Alignment, ResolvedDetection } from './stages';

/** face-api's SSD-MobileNetV1: its weights ship in the @vladmandic/face-api dependency. */
export const DEFAULT_DETECTOR = 'faceapi-ssd';
/** face-api's 68-point landmark net (shipped likewise). */
export const DEFAULT_LANDMARKS = 'faceapi-landmarks68';
/** face-api's FaceRecognitionNet, dlib's 128-d descriptor (shipped likewise). */
export const DEFAULT_EMBEDDER = 'faceapi-recognition';

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
  /** Before NMS, keep only the best this many candidates (0 = all; the default). Pytorch_Retinaface's WIDER FACE protocol uses 5000. */
  preNmsTopK?: number;
}

export interface FaceEngineOptions {
  /**
   * Where to run. 'cuda' runs every stage on the GPU, from the uploaded frames to the embeddings; it
   * needs a detector that gives five landmarks (RetinaFace) and no 68-point landmark stage (the SSD
   * decoder and the landmark net are CPU-only), else it rejects with E_DEVICE saying which stage.
   * 'auto' picks CUDA when usable and possible, else the CPU. Default 'cpu'.
   */
  device?: DeviceName;
  /** Arithmetic on CUDA, as loadModel's: 'fp16' runs the networks' convolutions on tensor cores. Default 'fp32'. */
  precision?: Precision;
  /** CPU threads (default: every core this process may use). */
  threads?: number;
  /**
   * The detector: a model name or 'name=path' with the path of its weights (the published
   * checkpoint, an ONNX file, or for face-api models the manifest or its folder). Default
   * 'faceapi-ssd' (face-api's SSD-MobileNetV1, shipped in @vladmandic/face-api; no landmarks);
   * 'retinaface-mnet025' gives five landmarks per face but needs its weights.
   */
  detector?: string;
  /**
   * The 68-point landmark model ('name' or 'name=path'), or false for none. Default
   * 'faceapi-landmarks68' when the detector gives no landmarks of its own (the SSD) or the
   * alignment's template is on 68 points (the default embedder's); otherwise none.
   */
  landmarks?: string | false;
  /** The embedding model ('name' or 'name=path'), or false for a detection-only engine. Default 'faceapi-recognition'. */
  embedder?: string | false;
  /**
   * How each face is cut out for the embedder: 'similarity' (landmarks onto the embedder's template,
   * least squares), 'eye-line' (the seed's: the box turned so that the eyes are level) or 'none'
   * (the box as it is). Default: the embedder's own ('similarity' for the shipped ones).
   */
  alignment?: Alignment;
  /**
   * Whether faces may be turned by any angle, sideways and upside down included (a phone photo
   * without its EXIF orientation). The default (false) handles tilts up to about ±60°; true finds
   * each face's quarter turn first, at the cost of 8 more landmark-net passes per face. Needs a
   * landmark model.
   */
  anyRotation?: boolean;
  /**
   * Test-time flip: embed each aligned face and its mirror image and concatenate the two (then
   * normalise), as MobileFaceNet's publisher evaluates it: embeddings twice as long, twice the
   * embedder's work, a little more accurate (LFW: see the README). Default false. A database must
   * be built and searched with the same setting (the lengths differ).
   */
  flip?: boolean;
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
   * image): the detector's (RetinaFace), else derived from the 68 landmarks (eye centres, nose tip,
   * mouth corners); empty when the engine has neither (a detection-only SSD engine without landmarks).
   */
  landmarks: [Point, Point, Point, Point, Point] | [];
  /** The 68 landmarks (dlib's layout, iBUG 300-W) when the engine has a landmark model; else absent. */
  landmarks68?: Point[];
}

export interface EmbeddedFace extends DetectedFace {
  /** The embedder's output, L2-normalised (unit length), as in the seed. */
  embedding: Float32Array;
}

export interface RecognizedFace extends EmbeddedFace {
  /** The nearest database entry's name when its distance is within the threshold, else 'Unknown'. */
  name: string;
  /** Euclidean distance to the nearest entry (Infinity for an empty database). */
  distance: number;
  /** The nearest entry's index in the database (−1 for an empty database). */
  index: number;
  /** The seed's compare_faces: per database entry, distance ≤ threshold. */
  matches: boolean[];
  /** Per database entry, the Euclidean distance. */
  distances: Float32Array;
}

export interface Verification {
  /** Whether the two largest faces are the same person: distance ≤ threshold. */
  same: boolean;
  distance: number;
  threshold: number;
  /** The face used from each image (its largest). */
  faces: [EmbeddedFace, EmbeddedFace];
}

/** What recognize() needs of a face database (FaceDatabase has it). */
export interface FaceMatcher {
  readonly threshold?: number | null;
  matchMany(embeddings: readonly Float32Array[], options?: { threshold?: number }): Promise<{ name: string; distance: number; index: number; matches: boolean[]; distances: Float32Array }[]>;
}

const ENGINE_KEYS = ['device', 'precision', 'threads', 'detector', 'landmarks', 'embedder', 'alignment', 'anyRotation', 'flip', 'detection', 'limitInputPixels'] as const;
const ALIGNMENTS: readonly Alignment[] = ['similarity', 'eye-line', 'none'];
const DETECTION_KEYS = ['threshold', 'nmsThreshold', 'inputSize', 'minFaceSize', 'maxFaces', 'preNmsTopK'] as const;
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
  const preNmsTopK = nonNegativeInteger(o.preNmsTopK, 'options.detection.preNmsTopK', 'a non-negative integer (0 = all)');
  return { threshold, nmsThreshold, inputSize, minFaceSize, maxFaces, preNmsTopK };
}

function point(values: readonly number[], i: number): Point {
  return { x: values[2 * i], y: values[2 * i + 1] };
}

function toFace(f: NativeFace): DetectedFace {
  const [x1, y1, x2, y2] = f.box;
  const l = f.landmarks;
  const face: DetectedFace = {
    box: { x: x1, y: y1, width: x2 - x1, height: y2 - y1 },
    score: f.score,
    landmarks: l.length < 10 ? [] : [point(l, 0), point(l, 1), point(l, 2), point(l, 3), point(l, 4)],
  };
  if (f.landmarks68.length === 136) face.landmarks68 = Array.from({ length: 68 }, (_, i) => point(f.landmarks68, i));
  return face;
}

function checkThreshold(value: unknown, what: string): number {
  if (typeof value !== 'number') throw invalidType('a positive number (Euclidean distance)', what, value);
  if (!(value > 0 && Number.isFinite(value))) throw invalidRange('a positive number (Euclidean distance)', what, value);
  return value;
}

/** The models of an engine: each stage's name and where its weights were read from. */
export interface EngineModels {
  readonly detector: { readonly name: string; readonly weights: string };
  readonly landmarks: { readonly name: string; readonly weights: string } | null;
  readonly embedder: { readonly name: string; readonly weights: string } | null;
}

/** The embedder's facts that callers (the database, the CLI) need. */
export interface EmbedderInfo {
  readonly name: string;
  /** Embedding length. */
  readonly size: number;
  /** The default same-person threshold on the Euclidean distance of L2-normalised embeddings, or null when not calibrated. */
  readonly threshold: number | null;
}

export class FaceEngine {
  /** Where the pipeline runs, and in which arithmetic ('fp16' only on CUDA). */
  readonly device: 'cpu' | 'cuda';
  readonly precision: Precision;
  readonly threads: number;
  readonly models: EngineModels;
  /** The detector model's name and where its weights were read from. */
  readonly detector: { readonly name: string; readonly weights: string };
  /** The embedder's name, size and default threshold; null for a detection-only engine. */
  readonly embedder: EmbedderInfo | null;
  readonly alignment: Alignment | null;
  /** Whether each face's embedding adds its mirror image's (options.flip). */
  readonly flip: boolean;
  readonly detection: Readonly<ResolvedDetection>;
  readonly limitInputPixels: number;
  #native: NativePipeline | undefined;
  // Native calls run one at a time per engine (the native side serialises them anyway, and a queued
  // call would otherwise hold a libuv thread that image decoding needs); decoding overlaps.
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    native: NativePipeline,
    init: { device: 'cpu' | 'cuda'; precision: Precision; threads: number; models: EngineModels; embedder: EmbedderInfo | null; alignment: Alignment | null; flip: boolean; detection: ResolvedDetection; limitInputPixels: number },
  ) {
    this.#native = native;
    this.device = init.device;
    this.precision = init.precision;
    this.threads = init.threads;
    this.models = Object.freeze(init.models);
    this.detector = init.models.detector;
    this.embedder = init.embedder && Object.freeze(init.embedder);
    this.alignment = init.alignment;
    this.flip = init.flip;
    this.detection = Object.freeze(init.detection);
    this.limitInputPixels = init.limitInputPixels;
  }

  /**
   * Loads (and converts, once per process or from the model cache) the models and prepares the
   * native pipeline.
   *
   * @throws FaceError E_INPUT (TypeError/RangeError) for a wrong option; E_MODEL for missing or bad
   *   weights or models that do not fit together; E_DEVICE for an unusable device
   */
  static async create(options: FaceEngineOptions = {}): Promise<FaceEngine> {
    if (typeof options !== 'object' || options === null || Array.isArray(options)) throw invalidType('an options object', 'FaceEngine.create(options)', options);
    checkKeys(options, ENGINE_KEYS, 'FaceEngine.create(options)');
    const threads = options.threads ?? defaultThreads();
    if (typeof threads !== 'number') throw invalidType('an integer from 1 to 256', 'options.threads', threads);
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw invalidRange('an integer from 1 to 256', 'options.threads', threads);
    const limitInputPixels = checkLimitInputPixels(options.limitInputPixels);
    if (options.alignment !== undefined && !ALIGNMENTS.includes(options.alignment)) {
      throw (typeof options.alignment === 'string' ? invalidRange : invalidType)("'similarity', 'eye-line' or 'none'", 'options.alignment', options.alignment);
    }
    for (const key of ['landmarks', 'embedder'] as const) {
      const v = options[key];
      if (v !== undefined && v !== false && typeof v !== 'string') throw invalidType("a model name, 'name=path' or false", `options.${key}`, v);
    }

    const detectorSpec = options.detector ?? DEFAULT_DETECTOR;
    const detector = resolveStage(detectorSpec, 'detector', 'options.detector');
    checkDetector(detector.descriptor, String(detectorSpec));
    const detection = resolveDetection(options.detection, detector.descriptor);
    if (options.precision !== undefined && options.precision !== 'fp32' && options.precision !== 'fp16')
      throw invalidType("'fp32' or 'fp16'", 'options.precision', options.precision);
    if (options.precision === 'fp16' && options.device === 'cpu')
      throw invalidRange("'fp32' on the CPU (fp16 runs on CUDA)", 'options.precision', options.precision);

    const embedderSpec = options.embedder ?? DEFAULT_EMBEDDER;
    const embedder = embedderSpec === false ? null : resolveStage(embedderSpec, 'embedder', 'options.embedder');
    if (embedder === null && options.alignment !== undefined) {
      throw new FaceRangeError(`Expected no options.alignment for an engine without an embedder (options.embedder false) but received '${options.alignment}'`);
    }
    const alignment: Alignment | null = embedder === null ? null : (options.alignment ?? embedder.descriptor.alignment?.kind ?? 'none');
    const detectorLandmarks = Boolean(detector.descriptor.outputs.landmarks);
    const needs68 = embedder !== null && alignmentNeeds68(embedder.descriptor, alignment!);
    const needsPoints = alignment === 'similarity' || alignment === 'eye-line';
    let landmarksSpec = options.landmarks;
    if (landmarksSpec === undefined) landmarksSpec = !detectorLandmarks || needs68 ? DEFAULT_LANDMARKS : false;
    if (landmarksSpec === false && (needs68 || (needsPoints && !detectorLandmarks))) {
      throw new FaceRangeError(
        `Expected a landmark model for options.landmarks but received false: alignment '${alignment}' of '${embedder!.descriptor.name}' needs ` +
          (needs68 ? '68-point landmarks' : `landmarks, which detector '${detector.descriptor.name}' does not give`) +
          " (leave options.landmarks unset, or use options.alignment 'none')",
      );
    }
    const landmarks = landmarksSpec === false ? null : resolveStage(landmarksSpec, 'landmarks', 'options.landmarks');
    const flip = options.flip ?? false;
    if (typeof flip !== 'boolean') throw invalidType('a boolean', 'options.flip', flip);
    if (flip && embedder === null) throw new FaceRangeError('Expected no options.flip for an engine without an embedder (options.embedder false) but received true');
    const anyRotation = options.anyRotation ?? false;
    if (typeof anyRotation !== 'boolean') throw invalidType('a boolean', 'options.anyRotation', anyRotation);
    if (anyRotation && !landmarks) throw new FaceRangeError('Expected a landmark model for options.landmarks but received false: options.anyRotation needs one');

    // The device pipeline (native/pipeline/cuda_face_pipeline) runs RetinaFace-style detectors and
    // alignments from their five points; the SSD decoder and the 68-point stage are CPU-only.
    const cpuOnly =
      detector.descriptor.decoder?.kind !== 'retinaface'
        ? `detector '${detector.descriptor.name}' decodes on the CPU only (the device pipeline runs RetinaFace detectors)`
        : landmarks
          ? `the landmark stage '${landmarks.descriptor.name}' runs on the CPU only (the device pipeline aligns from the detector's five points)`
          : null;
    const device = resolveDevice(options.device, cpuOnly ?? true);
    const precision: Precision = device === 'cuda' ? (options.precision ?? 'fp32') : 'fp32';

    const [detectorNative, landmarksNative, embedderNative] = await Promise.all([
      detectorStage(detector, detection),
      landmarks && landmarkStage(landmarks, anyRotation),
      embedder && embedderStage(embedder, alignment!, flip),
    ]);
    const callerStack = new Error();
    let native: NativePipeline;
    try {
      native = await binding().createPipeline(detectorNative, landmarksNative, embedderNative, threads, device, precision);
    } catch (error) {
      throw fromNative(error, callerStack);
    }
    const name = (m: { descriptor: ModelDescriptor; weights: string } | null) => m && Object.freeze({ name: m.descriptor.name, weights: m.weights });
    const embedderInfo: EmbedderInfo | null = embedder && {
      name: embedder.descriptor.name,
      size: native.embeddingSize || (embedder.descriptor.embedding?.size ?? 0) * (flip ? 2 : 1),
      threshold: embedder.descriptor.embedding?.defaultThreshold ?? null,
    };
    return new FaceEngine(native, {
      device,
      precision,
      threads,
      models: { detector: name(detector)!, landmarks: name(landmarks), embedder: name(embedder) },
      embedder: embedderInfo,
      alignment,
      flip,
      detection,
      limitInputPixels,
    });
  }

  /** Faces in one image, by descending score. */
  detect(input: ImageInput): Promise<DetectedFace[]>;
  /** Faces in each image of a batch (one list per image, in order); one native call for the batch. */
  detect(inputs: readonly ImageInput[]): Promise<DetectedFace[][]>;
  async detect(input: ImageInput | readonly ImageInput[]): Promise<DetectedFace[] | DetectedFace[][]> {
    const faces = await this.#run(input, false);
    return Array.isArray(input) ? faces : faces[0];
  }

  /** Faces in one image with their embeddings, by descending score. */
  embed(input: ImageInput): Promise<EmbeddedFace[]>;
  /** Faces with embeddings in each image of a batch; one native call for the batch. */
  embed(inputs: readonly ImageInput[]): Promise<EmbeddedFace[][]>;
  async embed(input: ImageInput | readonly ImageInput[]): Promise<EmbeddedFace[] | EmbeddedFace[][]> {
    this.#needEmbedder('embed');
    const faces = (await this.#run(input, true)) as EmbeddedFace[][];
    return Array.isArray(input) ? faces : faces[0];
  }

  /**
   * Every face in the image(s), named from the database: the nearest entry's name when within the
   * threshold (options.threshold, else the database's, else the embedder's default), else 'Unknown'.
   */
  recognize(input: ImageInput, database: FaceMatcher, options?: { threshold?: number }): Promise<RecognizedFace[]>;
  recognize(inputs: readonly ImageInput[], database: FaceMatcher, options?: { threshold?: number }): Promise<RecognizedFace[][]>;
  async recognize(input: ImageInput | readonly ImageInput[], database: FaceMatcher, options: { threshold?: number } = {}): Promise<RecognizedFace[] | RecognizedFace[][]> {
    const embedder = this.#needEmbedder('recognize');
    if (typeof database !== 'object' || database === null || typeof (database as FaceMatcher).matchMany !== 'function') {
      throw invalidType('a FaceDatabase', 'recognize(input, database)', database);
    }
    if (typeof options !== 'object' || options === null) throw invalidType('an options object', 'recognize(input, database, options)', options);
    const threshold = checkThreshold(options.threshold ?? database.threshold ?? embedder.threshold ?? NaN, 'options.threshold (no default: the database and the embedder have none)');
    const perImage = (await this.#run(input, true)) as EmbeddedFace[][];
    const all = perImage.flat();
    const matches = all.length ? await database.matchMany(all.map((f) => f.embedding), { threshold }) : [];
    let k = 0;
    const named = perImage.map((faces) => faces.map((face): RecognizedFace => ({ ...face, ...matches[k++] })));
    return Array.isArray(input) ? named : named[0];
  }

  /**
   * Whether the largest face of `a` and of `b` are the same person: Euclidean distance of their
   * embeddings ≤ threshold (options.threshold, else the embedder's default).
   *
   * @throws FaceError E_NO_FACE when an image shows no face
   */
  async verify(a: ImageInput, b: ImageInput, options: { threshold?: number } = {}): Promise<Verification> {
    const embedder = this.#needEmbedder('verify');
    if (typeof options !== 'object' || options === null) throw invalidType('an options object', 'verify(a, b, options)', options);
    const threshold = checkThreshold(options.threshold ?? embedder.threshold ?? NaN, 'options.threshold (the embedder has no default)');
    const [facesA, facesB] = (await this.#run([a, b], true)) as EmbeddedFace[][];
    const faceA = largestFace(facesA);
    const faceB = largestFace(facesB);
    if (!faceA || !faceB) throw new FaceError('E_NO_FACE', `verify(a, b): no face found in image ${!faceA ? 'a' : 'b'}${!faceA && !faceB ? ' nor in image b' : ''}`);
    const distance = euclideanDistance(faceA.embedding, faceB.embedding);
    return { same: distance <= threshold, distance, threshold, faces: [faceA, faceB] };
  }

  /** Frees the native pipeline. Calls already started finish; later calls reject with E_STATE. */
  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  async #run(input: ImageInput | readonly ImageInput[], embed: boolean): Promise<DetectedFace[][]> {
    this.#live();
    const frames = Array.isArray(input)
      ? await decodeImages(input as readonly ImageInput[], { limitInputPixels: this.limitInputPixels })
      : [await decodeImage(input as ImageInput, { limitInputPixels: this.limitInputPixels })];
    if (frames.length === 0) return [];
    const native = this.#live(); // disposed while decoding?
    const callerStack = new Error();
    const run = this.#queue.then(() => native.run(frames, embed));
    this.#queue = run.catch(() => undefined);
    let results: NativeFace[][];
    try {
      results = await run;
    } catch (error) {
      throw fromNative(error, callerStack);
    }
    if (!Array.isArray(results) || results.length !== frames.length) {
      throw new FaceError('E_INTERNAL', `The native pipeline returned ${describeValue(results)} for ${frames.length} frames`);
    }
    return results.map((list) =>
      list.map((f) => {
        const face = toFace(f);
        return embed ? ({ ...face, embedding: f.embedding! } as EmbeddedFace) : face;
      }),
    );
  }

  #needEmbedder(method: string): EmbedderInfo {
    this.#live();
    if (!this.embedder) throw new FaceError('E_STATE', `${method}() needs an embedder, but this engine was created with options.embedder false`);
    return this.embedder;
  }

  #live(): NativePipeline {
    if (!this.#native) throw new FaceError('E_STATE', 'The face engine has been disposed');
    return this.#native;
  }
}

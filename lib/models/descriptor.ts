/**
 * Model descriptors: what a network needs around it, declared in `models/<name>.json` (or in a user's
 * own file next to their ONNX model) so that no size, colour order, anchor or threshold is hard-coded.
 *
 * {@link parseDescriptor} validates a descriptor field by field and returns a frozen, normalised copy;
 * every problem is a FaceError E_MODEL naming the field and the file, e.g.
 * "Expected a positive integer for input.size.height in models/x.json but received string \"112\"".
 * Unknown fields are errors too (a misspelt optional field would otherwise be silently ignored).
 *
 * Pixel conventions used below: images are decoded to 8-bit values 0–255; the network input is
 * `(pixel − mean[c]) / std[c]` with channels in `input.colorOrder`; coordinates are in pixels of the
 * image they refer to, x to the right and y down, origin at the top-left corner.
 */
import { FaceError, describeValue } from '../errors';

/** What the network does in the pipeline. */
export type ModelRole = 'detector' | 'landmarks' | 'embedder';
export const MODEL_ROLES: readonly ModelRole[] = ['detector', 'landmarks', 'embedder'];

/**
 * Output roles: which graph output carries what.
 * - detector: `boxes` (required), `scores` (required), `landmarks` (optional), in the decoder's encoding
 * - landmarks: `landmarks` (required)
 * - embedder: `embedding` (required), [N, embedding.size]
 */
export type OutputRole = 'boxes' | 'scores' | 'landmarks' | 'embedding';
const OUTPUT_ROLES: Record<ModelRole, { required: OutputRole[]; optional: OutputRole[] }> = {
  detector: { required: ['boxes', 'scores'], optional: ['landmarks'] },
  landmarks: { required: ['landmarks'], optional: [] },
  embedder: { required: ['embedding'], optional: [] },
};

/**
 * Converters this version of facesight has, by name (lib/convert/index.ts maps each to its function).
 * A descriptor names one in `weights.converter` when its published weights need converting to ONNX.
 */
export const CONVERTER_NAMES = ['retinaface-mnet025', 'facenet-mobilenetv1', 'mobilefacenet', 'faceapi-ssd', 'faceapi-recognition', 'faceapi-landmarks68'] as const;
export type ConverterName = (typeof CONVERTER_NAMES)[number];

/** How an image is brought to a fixed input size (see {@link SizePolicy}). */
export type ResizeMode = 'letterbox' | 'stretch' | 'pad-square';
export const RESIZE_MODES: readonly ResizeMode[] = ['letterbox', 'stretch', 'pad-square'];

/** How an image (or an aligned crop) is brought to the network's input size. */
export type SizePolicy =
  /**
   * The network takes exactly `width` × `height` (pixels). `resize` says how a differently sized
   * image gets there: 'letterbox' keeps the aspect ratio, scales to fit and centres it on a
   * `padColor` background (0–255 per channel, RGB); 'stretch' scales each axis independently;
   * 'pad-square' is face-api's NetInput.toBatchTensor: pad the image at the bottom / right with
   * `padColor` (default black, 0) to a square of its longer side, then resize that square to the
   * input size with TensorFlow's legacy bilinear resize (alignCorners and halfPixelCenters false).
   */
  | { kind: 'fixed'; width: number; height: number; resize: ResizeMode; padColor?: readonly [number, number, number] }
  /**
   * The network takes any size (fully convolutional); the image is resized by `scale` first
   * (1 = as decoded; 0.5 = half size, faster, misses small faces). Default scale 1.
   */
  | { kind: 'any'; scale: number };

export interface InputSpec {
  /** The graph's input name. */
  name: string;
  /** Tensor layout; only NCHW (batch, channel, row, column) for now. */
  layout: 'NCHW';
  /** Channel order the network expects. */
  colorOrder: 'RGB' | 'BGR';
  size: SizePolicy;
  /** Subtracted from the 0–255 pixel values, per channel in `colorOrder`. */
  mean: readonly [number, number, number];
  /** Divides after subtracting `mean`, per channel in `colorOrder`; each > 0 (1 = none; 255 = to 0–1). */
  std: readonly [number, number, number];
}

/**
 * RetinaFace-style anchor decoding (Pytorch_Retinaface `PriorBox` + `decode`/`decode_landm`).
 * For feature level k with stride `steps[k]`, every cell (i, j) of the ceil(H/step) × ceil(W/step)
 * grid gets one square anchor per entry of `minSizes[k]`, centred at ((j + 0.5)·step, (i + 0.5)·step),
 * in that order. Boxes decode as centre + offset·variances[0]·anchor size, size·exp(offset·variances[1]);
 * landmarks as centre + offset·variances[0]·anchor size. `clip` clamps anchors to the image.
 */
export interface RetinaFaceDecoder {
  kind: 'retinaface';
  /** Anchor sizes in input pixels, one list per feature level. */
  minSizes: readonly (readonly number[])[];
  /** Stride of each feature level in input pixels; as many as `minSizes`. */
  steps: readonly number[];
  /** [centre variance, size variance]. */
  variances: readonly [number, number];
  clip: boolean;
}
/**
 * TensorFlow object-detection SSD decoding (face-api's SsdMobilenetv1 outputLayer; the full spec is
 * in lib/graphs/faceapi-ssd.ts). One anchor per row of the outputs, (cx, cy, w, h) normalised to the
 * input; a box encoding (ty, tx, th, tw) when `yxOrder`, else (tx, ty, tw, th), decodes as
 * centre = anchor centre + t / scaleXY · anchor size, size = exp(t / scaleWH) · anchor size. The
 * face score is scores[a · scoreStride + scoreIndex], through a sigmoid when `scoreSigmoid`.
 * Boxes have no landmarks.
 */
export interface SsdDecoder {
  kind: 'ssd';
  /** Divisor of the centre offsets (TensorFlow's box-coder y/x scale; 10 for face-api). */
  scaleXY: number;
  /** Divisor of the log sizes (the h/w scale; 5 for face-api). */
  scaleWH: number;
  /** Whether encodings are (ty, tx, th, tw), y first (TensorFlow), rather than (tx, ty, tw, th). */
  yxOrder: boolean;
  /** Values per anchor in the scores output (3 for face-api: background, face, unused). */
  scoreStride: number;
  /** Which of them is the face score (1 for face-api). */
  scoreIndex: number;
  /** Whether that value is a logit to pass through a sigmoid. */
  scoreSigmoid: boolean;
  /** Where the anchors come from: 'weights' = stored in the weights file (face-api's `Output/extra_dim`). */
  anchors: 'weights';
}
export type Decoder = RetinaFaceDecoder | SsdDecoder;
export const DECODER_KINDS = ['retinaface', 'ssd'] as const;

/** Defaults of detection post-processing (each can be overridden per call). */
export interface DetectionSpec {
  /** Keep detections whose face probability is at least this (0–1). */
  scoreThreshold: number;
  /** Non-maximum suppression: drop a box whose IoU with a higher-scoring kept box exceeds this (0–1). */
  nmsThreshold: number;
  /** Keep at most this many faces per image, the best ones (0 = no limit; the default). */
  maxFaces?: number;
}

/** How a detected face is cut out and aligned before embedding. */
export type AlignmentSpec =
  /**
   * Similarity transform (rotation, uniform scale, translation; least squares / Umeyama) from the
   * face's landmarks onto `template`, then a bilinear warp to `width` × `height`. Points in crop
   * pixels (pixel centres at integers, as cv2.warpAffine). `points` 'five' (the default): the
   * template lists left eye, right eye, nose tip, left mouth corner, right mouth corner (left/right
   * as seen in the image), from the detector or derived from 68 landmarks; 'landmarks68': it lists
   * the 68-point landmarks from `firstPoint` on (dlib's face chip uses 17–67), which needs the
   * landmark model.
   */
  | { kind: 'similarity'; template: readonly (readonly [number, number])[]; points: 'five' | 'landmarks68'; firstPoint: number; width: number; height: number }
  /**
   * The seed's method: crop the detection box, rotate the crop about its centre so that the line
   * between the eyes is horizontal, and bring it to `width` × `height` by `input.size.resize`.
   */
  | { kind: 'eye-line'; width: number; height: number };

export interface EmbeddingSpec {
  /** Length of one embedding vector. */
  size: number;
  /** Whether embeddings are L2-normalised before comparison (facesight does it when the graph does not). */
  normalize: boolean;
  /** How two embeddings are compared: Euclidean distance (smaller = closer) or cosine similarity (larger = closer). */
  metric: 'euclidean' | 'cosine';
  /**
   * The default same-person decision threshold for `metric`, or null where none has been calibrated
   * yet: then every comparison call must pass its own threshold. (Issue #5 calibrates these on LFW.)
   */
  defaultThreshold: number | null;
}

export interface WeightsSpec {
  /** Where the weights were published. */
  source: {
    /** Who trained and published them (a project or person, e.g. 'biubug6/Pytorch_Retinaface'). */
    publisher: string;
    /** The file as published (path inside `repo`, or the download's file name). */
    file: string;
    /** A GitHub repository 'owner/name' holding the file, if any. */
    repo?: string;
    /** A direct download address, if any. */
    url?: string;
    /** The commit of `repo` the checksum refers to, if known. */
    commit?: string;
  };
  /** The weights' license as far as known ('unknown' when none is stated). */
  license?: string;
  /**
   * File format of the weights: a `torch.save` checkpoint, a TensorFlow.js weight manifest with its
   * shards (face-api's models; the manifest's file name is the published one), or an ONNX model
   * used as it is.
   */
  format: 'pytorch' | 'tfjs' | 'onnx';
  /** SHA-256 (64 lowercase hex digits) of the file described by `source`, when known. */
  sha256?: string;
  /** The converter to ONNX (see CONVERTER_NAMES); null when there is none (yet) or format is 'onnx'. */
  converter: ConverterName | null;
  /**
   * Whether the weights ship with facesight: inside the npm package `package`, a dependency, at
   * `file` in it (then both are required). Other weights users bring themselves.
   */
  shipped: boolean;
  /** With `shipped`: the npm package holding the weights (e.g. '@vladmandic/face-api'). */
  package?: string;
  /** With `shipped`: the weights file inside `package`, '/'-separated (for 'tfjs': the manifest). */
  file?: string;
  /**
   * For weights available to facesight's own tests and evaluation only (never shipped): the path
   * relative to the data folder (FACESIGHT_DATA), '/'-separated.
   */
  dataPath?: string;
  /** Free text: provenance, caveats. */
  notes?: string;
}

export interface ModelDescriptor {
  /** Lowercase identifier used on the command line and in the API: [a-z0-9][a-z0-9._-]*. */
  name: string;
  /** One line for people. */
  description?: string;
  role: ModelRole;
  /** The network, for people (e.g. 'RetinaFace, MobileNetV1 x0.25 backbone, FPN + SSH'). */
  architecture: string;
  input: InputSpec;
  /** Output role → graph output name; see {@link OutputRole} for the roles of each model role. */
  outputs: Readonly<Partial<Record<OutputRole, string>>>;
  /** Detectors only: how the raw outputs decode to boxes, scores and landmarks. */
  decoder?: Decoder;
  /** Detectors only: post-processing defaults. */
  detection?: DetectionSpec;
  /** Embedders only: how a face is aligned; its size is the network's input size. */
  alignment?: AlignmentSpec;
  /** Embedders only. */
  embedding?: EmbeddingSpec;
  weights: WeightsSpec;
}

// ---------------------------------------------------------------------------------------------
// Validation

const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;

type Json = Record<string, unknown>;

class Checker {
  constructor(readonly source: string) {}

  fail(path: string, expected: string, received: unknown): FaceError {
    return new FaceError('E_MODEL', `Expected ${expected} for ${path} in ${this.source} but received ${describeValue(received)}`);
  }

  /** An object with only the given fields; returns it. */
  object(value: unknown, path: string, fields: readonly string[]): Json {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw this.fail(path || 'the descriptor', 'an object', value);
    for (const key of Object.keys(value)) {
      if (!fields.includes(key)) {
        throw new FaceError('E_MODEL', `Unknown field '${join(path, key)}' in ${this.source} (the fields of ${path || 'a descriptor'} are: ${fields.join(', ')})`);
      }
    }
    return value as Json;
  }

  /** The field's value; a missing required field is an error that says what was expected. */
  field(o: Json, path: string, key: string, expected: string): unknown {
    if (!Object.prototype.hasOwnProperty.call(o, key) || o[key] === undefined) {
      throw new FaceError('E_MODEL', `Missing field '${join(path, key)}' (${expected}) in ${this.source}`);
    }
    return o[key];
  }

  has(o: Json, key: string): boolean {
    return Object.prototype.hasOwnProperty.call(o, key) && o[key] !== undefined;
  }

  string(value: unknown, path: string, pattern?: RegExp, expected = 'a non-empty string'): string {
    if (typeof value !== 'string' || value.length === 0 || (pattern && !pattern.test(value))) throw this.fail(path, expected, value);
    return value;
  }

  oneOf<T extends string>(value: unknown, path: string, options: readonly T[]): T {
    if (typeof value !== 'string' || !options.includes(value as T)) throw this.fail(path, `one of ${options.map((o) => `'${o}'`).join(', ')}`, value);
    return value as T;
  }

  boolean(value: unknown, path: string): boolean {
    if (typeof value !== 'boolean') throw this.fail(path, 'a boolean', value);
    return value;
  }

  number(value: unknown, path: string, rule: 'finite' | 'positive' | 'non-negative' | 'unit' = 'finite'): number {
    const expected = { finite: 'a number', positive: 'a positive number', 'non-negative': 'a non-negative number', unit: 'a number from 0 to 1' }[rule];
    if (typeof value !== 'number' || !Number.isFinite(value)) throw this.fail(path, expected, value);
    if (rule === 'positive' && !(value > 0)) throw this.fail(path, expected, value);
    if (rule === 'non-negative' && !(value >= 0)) throw this.fail(path, expected, value);
    if (rule === 'unit' && !(value >= 0 && value <= 1)) throw this.fail(path, expected, value);
    return value;
  }

  positiveInteger(value: unknown, path: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw this.fail(path, 'a positive integer', value);
    return value;
  }

  array(value: unknown, path: string, expected: string, length?: number, minLength = 0): unknown[] {
    if (!Array.isArray(value) || (length !== undefined && value.length !== length) || value.length < minLength) throw this.fail(path, expected, value);
    return value;
  }

  numbers3(value: unknown, path: string, rule: 'finite' | 'positive' | 'non-negative'): [number, number, number] {
    const adjective = { finite: '', positive: 'positive ', 'non-negative': 'non-negative ' }[rule];
    const items = this.array(value, path, `an array of 3 ${adjective}numbers`, 3);
    return items.map((v, i) => this.number(v, `${path}[${i}]`, rule)) as [number, number, number];
  }
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/**
 * Validates a descriptor and returns a frozen copy holding only its known fields, with defaults
 * filled in (input.size.scale = 1 for 'any').
 *
 * @param json the parsed JSON value, or the file's text
 * @param source where it came from, for messages (e.g. 'models/retinaface-mnet025.json')
 * @throws FaceError E_MODEL naming the first field that is missing, of the wrong type, out of range,
 *   unknown, or inconsistent with another
 */
export function parseDescriptor(json: unknown, source: string): ModelDescriptor {
  if (typeof source !== 'string' || source.length === 0) source = 'a model descriptor';
  if (typeof json === 'string') {
    try {
      json = JSON.parse(json);
    } catch (cause) {
      throw new FaceError('E_MODEL', `${source} is not valid JSON: ${(cause as Error).message}`, { cause });
    }
  }
  const c = new Checker(source);
  const d = c.object(json, '', ['name', 'description', 'role', 'architecture', 'input', 'outputs', 'decoder', 'detection', 'alignment', 'embedding', 'weights']);

  const name = c.string(c.field(d, '', 'name', 'a lowercase identifier'), 'name', NAME_PATTERN, 'a lowercase identifier (letters a-z, digits, ".", "_", "-"; starting with a letter or digit)');
  const description = c.has(d, 'description') ? c.string(d.description, 'description') : undefined;
  const role = c.oneOf(c.field(d, '', 'role', `one of ${MODEL_ROLES.join(', ')}`), 'role', MODEL_ROLES);
  const architecture = c.string(c.field(d, '', 'architecture', 'a string'), 'architecture');
  const input = parseInput(c, c.field(d, '', 'input', 'an object'));
  const outputs = parseOutputs(c, c.field(d, '', 'outputs', 'an object mapping output roles to graph output names'), role);

  const only = (key: string, forRole: ModelRole) => {
    if (c.has(d, key) && role !== forRole) {
      throw new FaceError('E_MODEL', `Unexpected field '${key}' in ${source}: it applies to role '${forRole}' only, and this model's role is '${role}'`);
    }
    return role === forRole;
  };

  let decoder: Decoder | undefined;
  let detection: DetectionSpec | undefined;
  if (only('decoder', 'detector')) decoder = parseDecoder(c, c.field(d, '', 'decoder', `an object with kind ${DECODER_KINDS.join(', ')}`));
  if (only('detection', 'detector')) {
    const o = c.object(c.field(d, '', 'detection', 'an object with scoreThreshold and nmsThreshold'), 'detection', ['scoreThreshold', 'nmsThreshold', 'maxFaces']);
    detection = {
      scoreThreshold: c.number(c.field(o, 'detection', 'scoreThreshold', 'a number from 0 to 1'), 'detection.scoreThreshold', 'unit'),
      nmsThreshold: c.number(c.field(o, 'detection', 'nmsThreshold', 'a number from 0 to 1'), 'detection.nmsThreshold', 'unit'),
    };
    if (c.has(o, 'maxFaces')) {
      const maxFaces = o.maxFaces;
      if (typeof maxFaces !== 'number' || !Number.isSafeInteger(maxFaces) || maxFaces < 0) throw c.fail('detection.maxFaces', 'a non-negative integer (0 = no limit)', maxFaces);
      detection.maxFaces = maxFaces;
    }
  }

  let alignment: AlignmentSpec | undefined;
  let embedding: EmbeddingSpec | undefined;
  if (only('alignment', 'embedder')) alignment = parseAlignment(c, c.field(d, '', 'alignment', 'an object'));
  if (only('embedding', 'embedder')) embedding = parseEmbedding(c, c.field(d, '', 'embedding', 'an object'));
  if (alignment) {
    if (input.size.kind !== 'fixed') {
      throw new FaceError('E_MODEL', `Expected input.size.kind 'fixed' for an embedder in ${source} (the aligned crop has a fixed size) but received 'any'`);
    }
    if (alignment.width !== input.size.width || alignment.height !== input.size.height) {
      throw new FaceError('E_MODEL', `The aligned crop (alignment.width × alignment.height = ${alignment.width} × ${alignment.height}) must be the input size (input.size = ${input.size.width} × ${input.size.height}) in ${source}`);
    }
  }

  const weights = parseWeights(c, c.field(d, '', 'weights', 'an object'));

  const descriptor: ModelDescriptor = {
    name,
    ...(description !== undefined ? { description } : {}),
    role,
    architecture,
    input,
    outputs,
    ...(decoder ? { decoder } : {}),
    ...(detection ? { detection } : {}),
    ...(alignment ? { alignment } : {}),
    ...(embedding ? { embedding } : {}),
    weights,
  };
  return deepFreeze(descriptor);
}

function parseInput(c: Checker, value: unknown): InputSpec {
  const o = c.object(value, 'input', ['name', 'layout', 'colorOrder', 'size', 'mean', 'std']);
  const name = c.string(c.field(o, 'input', 'name', 'the graph input name'), 'input.name');
  const layout = c.oneOf(c.field(o, 'input', 'layout', "'NCHW'"), 'input.layout', ['NCHW'] as const);
  const colorOrder = c.oneOf(c.field(o, 'input', 'colorOrder', "'RGB' or 'BGR'"), 'input.colorOrder', ['RGB', 'BGR'] as const);
  const s = c.object(c.field(o, 'input', 'size', "an object with kind 'fixed' or 'any'"), 'input.size', ['kind', 'width', 'height', 'resize', 'padColor', 'scale']);
  const kind = c.oneOf(c.field(s, 'input.size', 'kind', "'fixed' or 'any'"), 'input.size.kind', ['fixed', 'any'] as const);
  let size: SizePolicy;
  if (kind === 'fixed') {
    if (c.has(s, 'scale')) throw new FaceError('E_MODEL', `Unexpected field 'input.size.scale' in ${c.source}: scale applies to size kind 'any' only`);
    const resize = c.oneOf(c.field(s, 'input.size', 'resize', "'letterbox', 'stretch' or 'pad-square'"), 'input.size.resize', RESIZE_MODES);
    const padColor = c.has(s, 'padColor') ? c.numbers3(s.padColor, 'input.size.padColor', 'non-negative') : undefined;
    if (padColor && resize === 'stretch') throw new FaceError('E_MODEL', `Unexpected field 'input.size.padColor' in ${c.source}: padColor applies to resize 'letterbox' and 'pad-square' only`);
    if (padColor?.some((v) => v > 255)) {
      throw new FaceError('E_MODEL', `Expected an array of 3 numbers from 0 to 255 for input.size.padColor in ${c.source} but received [${padColor.join(', ')}]`);
    }
    size = {
      kind,
      width: c.positiveInteger(c.field(s, 'input.size', 'width', 'a positive integer'), 'input.size.width'),
      height: c.positiveInteger(c.field(s, 'input.size', 'height', 'a positive integer'), 'input.size.height'),
      resize,
      ...(padColor ? { padColor } : {}),
    };
  } else {
    for (const key of ['width', 'height', 'resize', 'padColor']) {
      if (c.has(s, key)) throw new FaceError('E_MODEL', `Unexpected field 'input.size.${key}' in ${c.source}: size kind 'any' takes only scale`);
    }
    size = { kind, scale: c.has(s, 'scale') ? c.number(s.scale, 'input.size.scale', 'positive') : 1 };
  }
  const mean = c.numbers3(c.field(o, 'input', 'mean', 'an array of 3 numbers'), 'input.mean', 'finite');
  const std = c.numbers3(c.field(o, 'input', 'std', 'an array of 3 positive numbers'), 'input.std', 'positive');
  return { name, layout, colorOrder, size, mean, std };
}

function parseOutputs(c: Checker, value: unknown, role: ModelRole): Partial<Record<OutputRole, string>> {
  const { required, optional } = OUTPUT_ROLES[role];
  const o = c.object(value, 'outputs', [...required, ...optional]);
  const outputs: Partial<Record<OutputRole, string>> = {};
  for (const key of required) outputs[key] = c.string(c.field(o, 'outputs', key, `the name of the graph output holding ${key}`), `outputs.${key}`);
  for (const key of optional) if (c.has(o, key)) outputs[key] = c.string(o[key], `outputs.${key}`);
  const names = Object.values(outputs);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined) throw new FaceError('E_MODEL', `Two output roles name the same graph output '${duplicate}' in ${c.source}`);
  return outputs;
}

function parseDecoder(c: Checker, value: unknown): Decoder {
  // The kind first: another kind's fields would otherwise be reported as unknown.
  const kindOnly = c.object(value, 'decoder', Object.keys(value ?? {}));
  const kind = c.oneOf(c.field(kindOnly, 'decoder', 'kind', DECODER_KINDS.map((k) => `'${k}'`).join(', ')), 'decoder.kind', DECODER_KINDS);
  if (kind === 'ssd') return parseSsdDecoder(c, value);
  const o = c.object(value, 'decoder', ['kind', 'minSizes', 'steps', 'variances', 'clip']);
  const minSizes = c.array(c.field(o, 'decoder', 'minSizes', 'an array of arrays of anchor sizes'), 'decoder.minSizes', 'a non-empty array of arrays of anchor sizes', undefined, 1).map((level, k) =>
    c.array(level, `decoder.minSizes[${k}]`, 'a non-empty array of positive numbers', undefined, 1).map((v, i) => c.number(v, `decoder.minSizes[${k}][${i}]`, 'positive')),
  );
  const steps = c.array(c.field(o, 'decoder', 'steps', 'an array of strides'), 'decoder.steps', `an array of ${minSizes.length} strides (one per entry of decoder.minSizes)`, minSizes.length).map((v, i) =>
    c.positiveInteger(v, `decoder.steps[${i}]`),
  );
  const variances = c.array(c.field(o, 'decoder', 'variances', 'an array of 2 positive numbers'), 'decoder.variances', 'an array of 2 positive numbers', 2).map((v, i) =>
    c.number(v, `decoder.variances[${i}]`, 'positive'),
  ) as [number, number];
  const clip = c.boolean(c.field(o, 'decoder', 'clip', 'a boolean'), 'decoder.clip');
  return { kind: 'retinaface', minSizes, steps, variances, clip };
}

function parseSsdDecoder(c: Checker, value: unknown): SsdDecoder {
  const o = c.object(value, 'decoder', ['kind', 'scaleXY', 'scaleWH', 'yxOrder', 'scoreStride', 'scoreIndex', 'scoreSigmoid', 'anchors']);
  const positive = (key: string) => c.number(c.field(o, 'decoder', key, 'a positive number'), `decoder.${key}`, 'positive');
  const flag = (key: string) => c.boolean(c.field(o, 'decoder', key, 'a boolean'), `decoder.${key}`);
  const scaleXY = positive('scaleXY');
  const scaleWH = positive('scaleWH');
  const yxOrder = flag('yxOrder');
  const scoreStride = c.positiveInteger(c.field(o, 'decoder', 'scoreStride', 'a positive integer'), 'decoder.scoreStride');
  const scoreIndex = c.field(o, 'decoder', 'scoreIndex', 'an integer from 0 to scoreStride − 1');
  if (typeof scoreIndex !== 'number' || !Number.isSafeInteger(scoreIndex) || scoreIndex < 0 || scoreIndex >= scoreStride) {
    throw c.fail('decoder.scoreIndex', `an integer from 0 to ${scoreStride - 1} (below decoder.scoreStride)`, scoreIndex);
  }
  const scoreSigmoid = flag('scoreSigmoid');
  const anchors = c.oneOf(c.field(o, 'decoder', 'anchors', "'weights'"), 'decoder.anchors', ['weights'] as const);
  return { kind: 'ssd', scaleXY, scaleWH, yxOrder, scoreStride, scoreIndex, scoreSigmoid, anchors };
}

function parseAlignment(c: Checker, value: unknown): AlignmentSpec {
  const o = c.object(value, 'alignment', ['kind', 'template', 'points', 'firstPoint', 'width', 'height']);
  const kind = c.oneOf(c.field(o, 'alignment', 'kind', "'similarity' or 'eye-line'"), 'alignment.kind', ['similarity', 'eye-line'] as const);
  const width = c.positiveInteger(c.field(o, 'alignment', 'width', 'a positive integer'), 'alignment.width');
  const height = c.positiveInteger(c.field(o, 'alignment', 'height', 'a positive integer'), 'alignment.height');
  if (kind === 'eye-line') {
    for (const key of ['template', 'points', 'firstPoint']) {
      if (c.has(o, key)) throw new FaceError('E_MODEL', `Unexpected field 'alignment.${key}' in ${c.source}: it applies to alignment kind 'similarity' only`);
    }
    return { kind, width, height };
  }
  const points = c.has(o, 'points') ? c.oneOf(o.points, 'alignment.points', ['five', 'landmarks68'] as const) : 'five';
  let firstPoint = 0;
  if (c.has(o, 'firstPoint')) {
    if (points !== 'landmarks68') throw new FaceError('E_MODEL', `Unexpected field 'alignment.firstPoint' in ${c.source}: it applies to points 'landmarks68' only`);
    const first = o.firstPoint;
    if (typeof first !== 'number' || !Number.isInteger(first) || first < 0 || first > 66) throw c.fail('alignment.firstPoint', 'an integer from 0 to 66', first);
    firstPoint = first;
  }
  const count = points === 'five' ? 5 : 68 - firstPoint;
  const expected = `an array of ${count} [x, y] points`;
  const list = c.array(c.field(o, 'alignment', 'template', expected), 'alignment.template', expected, count);
  const template = list.map((p, i) => {
    const path = `alignment.template[${i}]`;
    const [x, y] = c.array(p, path, 'an [x, y] pair of numbers', 2).map((v, k) => c.number(v, `${path}[${k}]`));
    if (x < 0 || x > width || y < 0 || y > height) {
      throw new FaceError('E_MODEL', `Expected a point inside the ${width} × ${height} crop for ${path} in ${c.source} but received [${x}, ${y}]`);
    }
    return [x, y] as [number, number];
  });
  return { kind, template, points, firstPoint, width, height };
}

function parseEmbedding(c: Checker, value: unknown): EmbeddingSpec {
  const o = c.object(value, 'embedding', ['size', 'normalize', 'metric', 'defaultThreshold']);
  const threshold = c.field(o, 'embedding', 'defaultThreshold', 'a number, or null when not calibrated');
  return {
    size: c.positiveInteger(c.field(o, 'embedding', 'size', 'a positive integer'), 'embedding.size'),
    normalize: c.boolean(c.field(o, 'embedding', 'normalize', 'a boolean'), 'embedding.normalize'),
    metric: c.oneOf(c.field(o, 'embedding', 'metric', "'euclidean' or 'cosine'"), 'embedding.metric', ['euclidean', 'cosine'] as const),
    defaultThreshold: threshold === null ? null : c.number(threshold, 'embedding.defaultThreshold', 'finite'),
  };
}

function parseWeights(c: Checker, value: unknown): WeightsSpec {
  const o = c.object(value, 'weights', ['source', 'license', 'format', 'sha256', 'converter', 'shipped', 'package', 'file', 'dataPath', 'notes']);
  const s = c.object(c.field(o, 'weights', 'source', 'an object with publisher and file'), 'weights.source', ['publisher', 'file', 'repo', 'url', 'commit']);
  const source: WeightsSpec['source'] = {
    publisher: c.string(c.field(s, 'weights.source', 'publisher', 'who published the weights'), 'weights.source.publisher'),
    file: c.string(c.field(s, 'weights.source', 'file', 'the published file'), 'weights.source.file'),
  };
  if (c.has(s, 'repo')) source.repo = c.string(s.repo, 'weights.source.repo', /^[\w.-]+\/[\w.-]+$/, "a GitHub repository 'owner/name'");
  if (c.has(s, 'url')) source.url = c.string(s.url, 'weights.source.url', /^https?:\/\/\S+$/, 'an http(s) URL');
  if (c.has(s, 'commit')) source.commit = c.string(s.commit, 'weights.source.commit', /^[0-9a-f]{7,40}$/, 'a git commit id (hex)');
  const format = c.oneOf(c.field(o, 'weights', 'format', "'pytorch', 'tfjs' or 'onnx'"), 'weights.format', ['pytorch', 'tfjs', 'onnx'] as const);
  const converterValue = c.field(o, 'weights', 'converter', `one of ${CONVERTER_NAMES.join(', ')}, or null`);
  const converter = converterValue === null ? null : c.oneOf(converterValue, 'weights.converter', CONVERTER_NAMES);
  if (format === 'onnx' && converter !== null) throw c.fail('weights.converter', "null (weights in format 'onnx' need no converter)", converter);
  const weights: WeightsSpec = { source, format, converter, shipped: c.boolean(c.field(o, 'weights', 'shipped', 'a boolean'), 'weights.shipped') };
  if (weights.shipped) {
    weights.package = c.string(c.field(o, 'weights', 'package', 'the npm package holding shipped weights'), 'weights.package', /^(?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/, "an npm package name (e.g. '@vladmandic/face-api')");
    weights.file = relativePath(c, c.field(o, 'weights', 'file', 'the weights file inside weights.package'), 'weights.file', "a relative '/'-separated path inside the package");
  } else {
    for (const key of ['package', 'file']) {
      if (c.has(o, key)) throw new FaceError('E_MODEL', `Unexpected field 'weights.${key}' in ${c.source}: it applies to shipped weights (weights.shipped true) only`);
    }
  }
  if (c.has(o, 'license')) weights.license = c.string(o.license, 'weights.license');
  if (c.has(o, 'sha256')) weights.sha256 = c.string(o.sha256, 'weights.sha256', SHA256_PATTERN, 'a SHA-256 digest (64 lowercase hex digits)');
  if (c.has(o, 'dataPath')) weights.dataPath = relativePath(c, o.dataPath, 'weights.dataPath', "a relative '/'-separated path inside the data folder");
  if (c.has(o, 'notes')) weights.notes = c.string(o.notes, 'weights.notes');
  return weights;
}

/** A relative '/'-separated path that stays inside its folder. */
function relativePath(c: Checker, value: unknown, path: string, expected: string): string {
  const p = c.string(value, path);
  if (p.startsWith('/') || p.includes('\\') || /^[A-Za-z]:/.test(p) || p.split('/').some((part) => part === '..' || part === '' || part === '.')) throw c.fail(path, expected, p);
  return p;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

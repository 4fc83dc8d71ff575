/**
 * The pipeline's model stages: resolving a model option ('name' or 'name=path') to its descriptor
 * and weights, converting the weights to ONNX (once per process, or from the model cache), and the
 * settings each native stage copies at creation. face-engine.ts puts the stages together.
 */
import * as fs from 'node:fs/promises';
import type { NativeDetectorConfig, NativeEmbedderConfig, NativeLandmarkerConfig, NativeStage } from '../binding';
import { FaceError, FaceRangeError, FaceTypeError, invalidType } from '../errors';
import { convertModel, faceApiFolder } from '../convert';
import { cachedFaceApiModel, loadFaceApiSsdAnchors, type FaceApiModelId } from '../convert/faceapi';
import type { ModelDescriptor, ModelRole, RetinaFaceDecoder } from '../models/descriptor';
import { locateWeights, resolveModelSpec } from '../models/registry';

/** The settings an engine runs detection with, after defaults. */
export interface ResolvedDetection {
  threshold: number;
  nmsThreshold: number;
  inputSize: number | 'original' | { width: number; height: number };
  minFaceSize: number;
  maxFaces: number;
  preNmsTopK: number;
}

export type Alignment = 'similarity' | 'eye-line' | 'none';

const ROLE_WORD: Record<ModelRole, string> = { detector: 'detector', landmarks: 'landmark model', embedder: 'embedder' };

/** The detector's descriptor, checked for what this pipeline can run. */
export function checkDetector(descriptor: ModelDescriptor, spec: string): void {
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
    preNmsTopK: detection.preNmsTopK,
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

async function modelOnnx(descriptor: ModelDescriptor, weightsPath: string): Promise<Uint8Array> {
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

function missingWeights(descriptor: ModelDescriptor, looked: string | undefined, option: string): FaceError {
  const w = descriptor.weights;
  if (w.shipped) {
    return new FaceError(
      'E_MODEL',
      `No weights for ${ROLE_WORD[descriptor.role]} '${descriptor.name}': they ship in the package ${w.package}, ` +
        (looked ? `but ${looked} is missing: reinstall it (\`npm install ${w.package}\`)` : `which is not installed: run \`npm install ${w.package}\``) +
        `, or give the weights' path as ${option} = '${descriptor.name}=/path/to/${w.file!.split('/').pop()}'`,
    );
  }
  const where = w.source.url ?? (w.source.repo ? `github.com/${w.source.repo}` : w.source.publisher);
  return new FaceError(
    'E_MODEL',
    `No weights for ${ROLE_WORD[descriptor.role]} '${descriptor.name}'${looked ? ` (none at ${looked})` : ''}. facesight does not ship these weights: ` +
      `get ${w.source.file} (${w.source.publisher}, from ${where}${w.sha256 ? `, sha256 ${w.sha256}` : ''}) ` +
      `and give its path as ${option} = '${descriptor.name}=/path/to/${w.source.file.split('/').pop()}'` +
      (w.dataPath ? `, or set FACESIGHT_DATA to a folder holding ${w.dataPath}` : ''),
  );
}


/** A model option resolved to its descriptor and the weights found on this machine. */
export interface StageModel {
  descriptor: ModelDescriptor;
  /** The weights file (or face-api manifest) read. */
  weights: string;
}

/**
 * Resolves `spec` ('name' or 'name=path') for the option `option` and checks the model's role.
 *
 * @throws FaceError E_INPUT for a malformed or unknown spec; E_MODEL for a model of another role or
 *   missing weights (the message says where to get them)
 */
export function resolveStage(spec: unknown, role: ModelRole, option: string): StageModel {
  if (typeof spec !== 'string') throw invalidType("a model name or 'name=path'", option, spec);
  let resolved;
  try {
    resolved = resolveModelSpec(spec);
  } catch (error) {
    // Name the option in argument errors ("... for options.detector but received ...").
    if (error instanceof FaceTypeError || error instanceof FaceRangeError) error.message = error.message.replace(' for the model ', ` for ${option} `);
    throw error;
  }
  const { descriptor } = resolved;
  if (descriptor.role !== role) {
    throw new FaceRangeError(`Expected a model of role '${role}' for ${option} but received '${spec}' (a model of role '${descriptor.role}')`);
  }
  const at = locateWeights(descriptor, resolved.weightsPath);
  if (!at.present) {
    if (at.origin === 'user') throw new FaceError('E_MODEL', `Cannot find the weights of ${ROLE_WORD[role]} '${descriptor.name}': no file at ${at.path} (from ${option} '${spec}')`);
    throw missingWeights(descriptor, at.path, option);
  }
  return { descriptor, weights: at.path! };
}

const FACE_API_IDS: Record<string, FaceApiModelId> = { 'faceapi-ssd': 'ssd', 'faceapi-landmarks68': 'landmarks68', 'faceapi-recognition': 'recognition' };

/** The model's ONNX bytes: face-api models from the model cache, others converted once per process. */
export async function stageOnnx(model: StageModel): Promise<Uint8Array> {
  const id = FACE_API_IDS[model.descriptor.weights.converter ?? ''];
  if (id) return cachedFaceApiModel(id, faceApiFolder(id, model.weights));
  return modelOnnx(model.descriptor, model.weights);
}

/** The detector stage: its ONNX and its native settings (SSD anchors read from face-api's weights). */
export async function detectorStage(model: StageModel, detection: ResolvedDetection): Promise<NativeStage<NativeDetectorConfig>> {
  if (model.descriptor.decoder?.kind === 'ssd') {
    const folder = faceApiFolder('ssd', model.weights);
    const [bytes, anchors] = await Promise.all([stageOnnx(model), loadFaceApiSsdAnchors(folder)]);
    return { bytes, config: nativeConfig(model.descriptor, detection, anchors) };
  }
  return { bytes: await stageOnnx(model), config: nativeConfig(model.descriptor, detection) };
}

/** A crop stage's network input: its fixed size, normalisation and padding colour. */
function cropInput(d: ModelDescriptor) {
  const size = d.input.size;
  if (size.kind !== 'fixed') throw new FaceError('E_MODEL', `The ${ROLE_WORD[d.role]} '${d.name}' must have a fixed input size (input.size.kind 'fixed')`);
  return {
    inputWidth: size.width,
    inputHeight: size.height,
    colorOrder: d.input.colorOrder,
    mean: [...d.input.mean],
    std: [...d.input.std],
    padValue: [...(size.padColor ?? [0, 0, 0])],
  };
}

/** The 68-point landmark stage (face-api's FaceLandmark68Net layout: 136 outputs, 0–1 of the crop). */
export async function landmarkStage(model: StageModel, anyRotation: boolean): Promise<NativeStage<NativeLandmarkerConfig>> {
  const d = model.descriptor;
  const config: NativeLandmarkerConfig = {
    ...cropInput(d),
    output: d.outputs.landmarks!, // required of the role by the descriptor validator
    uprightDegrees: 15,
    anyRotation,
  };
  return { bytes: await stageOnnx(model), config };
}

/** Whether the alignment needs 68-point landmarks (a template over them). */
export function alignmentNeeds68(descriptor: ModelDescriptor, alignment: Alignment): boolean {
  return alignment === 'similarity' && descriptor.alignment?.kind === 'similarity' && descriptor.alignment.points === 'landmarks68';
}

/** The embedding stage: the aligned crop (per `alignment`) and the network. */
export async function embedderStage(model: StageModel, alignment: Alignment, flip: boolean): Promise<NativeStage<NativeEmbedderConfig>> {
  const d = model.descriptor;
  const spec = d.alignment;
  if (alignment === 'similarity' && spec?.kind !== 'similarity') {
    throw new FaceRangeError(`Expected 'eye-line' or 'none' for options.alignment but received 'similarity': the embedder '${d.name}' has no similarity template`);
  }
  const template = alignment === 'similarity' && spec?.kind === 'similarity' ? spec.template.flatMap(([x, y]) => [x, y]) : [];
  const config: NativeEmbedderConfig = {
    ...cropInput(d),
    output: d.outputs.embedding!, // required of the role by the descriptor validator
    alignment,
    template,
    uses68: alignmentNeeds68(d, alignment),
    firstPoint: spec?.kind === 'similarity' ? spec.firstPoint : 0,
    flip,
  };
  return { bytes: await stageOnnx(model), config };
}

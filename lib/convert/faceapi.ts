/**
 * Converts the pretrained networks that @vladmandic/face-api (MIT) ships in its `model/` folder —
 * TensorFlow.js weight manifests and shards, mostly uint8-quantised — into ONNX models:
 *
 * - {@link convertFaceApiRecognition}: FaceRecognitionNet, the dlib ResNet face descriptor
 *   (`face_recognition_model`), graph {@link buildFaceApiRecognition}: `input` [N,3,150,150] →
 *   `embedding` [N,128];
 * - {@link convertFaceApiLandmarks68}: FaceLandmark68Net (`face_landmark_68_model`), graph
 *   {@link buildFaceApiLandmarks68}: `input` [N,3,112,112] → `landmarks` [N,136] (relative);
 * - {@link convertFaceApiSsd}: the SSD-MobileNetV1 face detector (`ssd_mobilenetv1_model`), graph
 *   {@link buildFaceApiSsd}: `input` [N,3,512,512] → `box_encodings` [N,5118,4], `scores` [N,5118,3]
 *   (raw, before decoding and NMS); its anchors, which the manifest also holds, come from
 *   {@link loadFaceApiSsdAnchors} (see lib/graphs/faceapi-ssd.ts for the post-processing).
 *
 * The first two take (RGB − [122.782, 117.001, 104.298]) / 255, the detector RGB / 127.5 − 1. The
 * manifest must hold exactly the tensors the graph consumes (the detector's also its anchors, and
 * the small int32 / scalar leftovers of the TensorFlow export, which face-api ignores too), with their
 * tfjs shapes and a float dtype; anything else is a FaceError E_MODEL naming the tensor. Converted models are never committed or shipped: {@link cachedFaceApiModel}
 * converts on first use into the model cache, keyed by a SHA-256 of the manifest and shards.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { FaceError, invalidType } from '../errors';
import type { ModelOptions } from '../onnx/builder';
import type { WeightKey } from '../graphs/layers';
import { buildFaceApiRecognition, faceApiRecognitionKeys } from '../graphs/faceapi-recognition';
import { buildFaceApiLandmarks68, faceApiLandmarks68Keys } from '../graphs/faceapi-landmarks';
import {
  FACEAPI_SSD_ANCHOR_COUNT,
  FACEAPI_SSD_ANCHORS_KEY,
  buildFaceApiSsd,
  faceApiSsdAnchors,
  faceApiSsdKeys,
  type FaceApiSsdAnchorOptions,
} from '../graphs/faceapi-ssd';
import { cachedModel, type CachedModelOptions } from '../models/cache';
import { readTfjsWeights, tfjsWeightsDigest } from './faceapi-weights';
import type { TorchTensor } from './torch-checkpoint';
import { buildWithWeights, checkStateDict, type StateDictSpec } from './state-dict';

export type FaceApiModelId = 'recognition' | 'landmarks68' | 'ssd';

interface FaceApiModel {
  /** The manifest's file name in face-api's model/ folder. */
  manifest: string;
  modelName: string;
  keys: () => WeightKey[];
  build: (opts: ModelOptions & { weights: (key: string) => { data: Float32Array; dims: readonly number[] } | undefined }) => Uint8Array;
  /** Bumped whenever the graph a converter writes changes: part of the cache key. */
  version: number;
  /** Manifest tensors face-api does not use, dropped before the check (see StateDictSpec.ignore). */
  ignore?: StateDictSpec['ignore'];
}

/**
 * The SSD manifest's leftovers of the TensorFlow export (constants of the original graph's reshapes,
 * slices and preprocessing: int32 scalars and short vectors), which face-api disposes unused.
 */
const SSD_EXPORT_LEFTOVER = /^(?:Preprocessor\/|Postprocessor\/|concat_1\/axis$|Prediction\/BoxPredictor_\d+\/(?:stack|stack_1|strided_slice)\/)/;

const MODELS: Record<FaceApiModelId, FaceApiModel> = {
  recognition: {
    manifest: 'face_recognition_model-weights_manifest.json',
    modelName: 'face-api FaceRecognitionNet (face_recognition_model)',
    keys: faceApiRecognitionKeys,
    build: buildFaceApiRecognition,
    version: 1,
  },
  landmarks68: {
    manifest: 'face_landmark_68_model-weights_manifest.json',
    modelName: 'face-api FaceLandmark68Net (face_landmark_68_model)',
    keys: faceApiLandmarks68Keys,
    build: buildFaceApiLandmarks68,
    version: 1,
  },
  ssd: {
    manifest: 'ssd_mobilenetv1_model-weights_manifest.json',
    modelName: 'face-api SSD-MobileNetV1 face detector (ssd_mobilenetv1_model)',
    // The graph's weights and the anchors, which are not part of the graph but must be there.
    keys: () => [...faceApiSsdKeys(), { key: FACEAPI_SSD_ANCHORS_KEY, dims: [1, FACEAPI_SSD_ANCHOR_COUNT, 4] }],
    build: (opts) => {
      faceApiSsdAnchors(opts.weights); // checks the anchors (and marks them used)
      return buildFaceApiSsd(opts);
    },
    version: 1,
    ignore: (key, tensor) => (SSD_EXPORT_LEFTOVER.test(key) && tensor.dims.reduce((a, b) => a * b, 1) <= 4 ? { drop: true } : undefined),
  },
};

const specs = new Map<FaceApiModelId, StateDictSpec>();

/**
 * The installed @vladmandic/face-api package's `model/` folder.
 *
 * @throws FaceError E_MODEL when the package is not installed
 */
export function faceApiModelDir(): string {
  let pkg: string;
  try {
    pkg = require.resolve('@vladmandic/face-api/package.json');
  } catch (cause) {
    throw new FaceError('E_MODEL', 'The package @vladmandic/face-api, which holds the face-api model weights, is not installed: run `npm install @vladmandic/face-api`', { cause });
  }
  return path.join(path.dirname(pkg), 'model');
}

/** The manifest file of a face-api model in `modelDir` (default: the installed package's). */
export function faceApiManifestPath(id: FaceApiModelId, modelDir?: string): string {
  const model = modelOf(id);
  if (modelDir !== undefined && (typeof modelDir !== 'string' || modelDir.length === 0)) {
    throw invalidType("a folder path holding face-api's weight manifests", 'modelDir', modelDir);
  }
  return path.join(modelDir ?? faceApiModelDir(), model.manifest);
}

/**
 * Converts face-api's FaceRecognitionNet weights to ONNX bytes (input `input` [N,3,150,150],
 * output `embedding` [N,128]).
 *
 * @param modelDir the folder with `face_recognition_model-weights_manifest.json` and its shards
 *   (default: the installed @vladmandic/face-api's model/)
 * @throws FaceError E_MODEL for unreadable, malformed or mismatching weights
 */
export async function convertFaceApiRecognition(modelDir?: string, opts: ModelOptions = {}): Promise<Uint8Array> {
  return convertFaceApi('recognition', modelDir, opts);
}

/**
 * Converts face-api's FaceLandmark68Net weights to ONNX bytes (input `input` [N,3,112,112],
 * output `landmarks` [N,136], x/y pairs relative to the input).
 *
 * @param modelDir the folder with `face_landmark_68_model-weights_manifest.json` and its shards
 *   (default: the installed @vladmandic/face-api's model/)
 * @throws FaceError E_MODEL for unreadable, malformed or mismatching weights
 */
export async function convertFaceApiLandmarks68(modelDir?: string, opts: ModelOptions = {}): Promise<Uint8Array> {
  return convertFaceApi('landmarks68', modelDir, opts);
}

/**
 * Converts face-api's SSD-MobileNetV1 face detector to ONNX bytes (input `input` [N,3,512,512],
 * RGB / 127.5 − 1; outputs `box_encodings` [N,5118,4] (ty, tx, th, tw) and `scores` [N,5118,3]
 * class logits, before decoding and NMS). The anchors: {@link loadFaceApiSsdAnchors}.
 *
 * @param modelDir the folder with `ssd_mobilenetv1_model-weights_manifest.json` and its shard
 *   (default: the installed @vladmandic/face-api's model/)
 * @throws FaceError E_MODEL for unreadable, malformed or mismatching weights
 */
export async function convertFaceApiSsd(modelDir?: string, opts: ModelOptions = {}): Promise<Uint8Array> {
  return convertFaceApi('ssd', modelDir, opts);
}

/**
 * The SSD detector's 5118 anchors from its manifest, in the order of the converted model's outputs:
 * Float32Array [5118 × 4], by default (cx, cy, w, h) normalised to the 512 × 512 input, as
 * native/vision/priors.h DecodeSsd reads them (see {@link faceApiSsdAnchors}).
 *
 * @throws FaceError E_MODEL for unreadable weights or a missing or malformed anchors tensor
 */
export async function loadFaceApiSsdAnchors(modelDir?: string, opts: FaceApiSsdAnchorOptions = {}): Promise<Float32Array> {
  const manifest = faceApiManifestPath('ssd', modelDir);
  const { tensors } = await readTfjsWeights(manifest);
  try {
    return faceApiSsdAnchors(tensors, opts);
  } catch (error) {
    if (error instanceof RangeError) throw new FaceError('E_MODEL', `${error.message} (in '${manifest}')`, { cause: error });
    throw error;
  }
}

export async function convertFaceApi(id: FaceApiModelId, modelDir?: string, opts: ModelOptions = {}): Promise<Uint8Array> {
  if (typeof opts !== 'object' || opts === null) throw invalidType('an options object', 'convertFaceApi(options)', opts);
  const model = modelOf(id);
  const manifest = faceApiManifestPath(id, modelDir);
  const { tensors } = await readTfjsWeights(manifest);
  const asTorch = new Map<string, TorchTensor>();
  for (const [key, t] of tensors) asTorch.set(key, { key, dtype: t.dtype, dims: t.dims, data: t.data });
  const what = `'${manifest}'`;
  const weights = checkStateDict(asTorch, specOf(id), what);
  const { opset, irVersion, producer, producerVersion, domainVersions } = opts;
  return buildWithWeights(weights, what, model.modelName, (lookup) =>
    model.build({ weights: lookup, opset, irVersion, producer, producerVersion, domainVersions }),
  );
}

/**
 * The cache key of a face-api model: a SHA-256 over the converter's identity and version and the
 * weights' digest (manifest + shards).
 */
export async function faceApiCacheKey(id: FaceApiModelId, modelDir?: string): Promise<string> {
  const model = modelOf(id);
  const weights = await tfjsWeightsDigest(faceApiManifestPath(id, modelDir));
  return createHash('sha256').update(`facesight faceapi-${id} converter v${model.version}\n${weights}`).digest('hex');
}

/**
 * The ONNX bytes of a face-api model, converted on first use and cached (see lib/models/cache.ts):
 * a later call with the same weights reads the verified cached file instead of converting.
 */
export async function cachedFaceApiModel(id: FaceApiModelId, modelDir?: string, opts: CachedModelOptions = {}): Promise<Uint8Array> {
  const key = await faceApiCacheKey(id, modelDir);
  return cachedModel(`faceapi-${id}`, () => convertFaceApi(id, modelDir), key, opts);
}

function modelOf(id: FaceApiModelId): FaceApiModel {
  const model = (MODELS as Record<string, FaceApiModel | undefined>)[id as string];
  if (model === undefined || !Object.hasOwn(MODELS, id)) throw invalidType("'recognition', 'landmarks68' or 'ssd'", 'the face-api model', id);
  return model;
}

function specOf(id: FaceApiModelId): StateDictSpec {
  let spec = specs.get(id);
  if (!spec) {
    const model = MODELS[id];
    spec = {
      modelName: model.modelName,
      expected: new Map(model.keys().map((k) => [k.key, k.dims] as const)),
      ignore: model.ignore,
      hint: (keys) => {
        const other = (Object.keys(MODELS) as FaceApiModelId[]).find((o) => o !== id && MODELS[o].keys().every((k) => keys.includes(k.key)));
        return other ? `these are the weights of ${MODELS[other].modelName}` : undefined;
      },
    };
    specs.set(id, spec);
  }
  return spec;
}

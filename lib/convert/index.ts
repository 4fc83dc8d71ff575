/**
 * The converters from published weights to ONNX, by the name a descriptor gives in
 * `weights.converter`, and {@link convertModel}, which picks the right one for a model.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FaceError, describeValue } from '../errors';
import type { ConverterName, ModelDescriptor } from '../models/descriptor';
import { convertFaceApi, faceApiManifestPath, type FaceApiModelId } from './faceapi';
import { convertFaceNetMobileNetV1 } from './facenet';
import { convertMobileFaceNet } from './mobilefacenet';
import { convertRetinaFaceMnet025 } from './retinaface';

/**
 * A converter: published weights → ONNX bytes. `checkpoint` is the weights file (its bytes or its
 * path); for the face-api converters (format 'tfjs', a manifest plus shard files) it must be a path:
 * the manifest (with face-api's file name, shards beside it) or the folder holding it.
 */
export type Converter = (checkpoint: Uint8Array | string, opts?: { name?: string }) => Promise<Uint8Array>;

/**
 * The folder of face-api weights from a converter's `checkpoint`: the folder itself, or the
 * manifest's folder (a manifest of another name is an error: face-api's loader names them).
 */
export function faceApiFolder(id: FaceApiModelId, checkpoint: Uint8Array | string): string {
  if (typeof checkpoint !== 'string') {
    throw new FaceError('E_INPUT', `Expected the path of a face-api weight manifest or of its folder for the weights but received ${describeValue(checkpoint)}: tfjs weights are a manifest plus shard files`);
  }
  const full = path.resolve(checkpoint);
  let isDir = false;
  try {
    isDir = fs.statSync(full).isDirectory();
  } catch {
    // Reported by the reader, naming the manifest.
  }
  if (isDir) return full;
  const expected = path.basename(faceApiManifestPath(id, path.dirname(full)));
  if (path.basename(full) !== expected) {
    throw new FaceError('E_MODEL', `Expected face-api's manifest '${expected}' (or its folder) for the weights but received '${checkpoint}'`);
  }
  return path.dirname(full);
}

const faceApi = (id: FaceApiModelId): Converter => (checkpoint) => convertFaceApi(id, faceApiFolder(id, checkpoint));

/** One entry per name in CONVERTER_NAMES (the type makes a missing one a compile error). */
export const CONVERTERS: Readonly<Record<ConverterName, Converter>> = {
  'retinaface-mnet025': convertRetinaFaceMnet025,
  'facenet-mobilenetv1': convertFaceNetMobileNetV1,
  mobilefacenet: convertMobileFaceNet,
  'faceapi-ssd': faceApi('ssd'),
  'faceapi-recognition': faceApi('recognition'),
  'faceapi-landmarks68': faceApi('landmarks68'),
};

/**
 * Converts a model's published weights (bytes or a path) to the bytes of an ONNX model.
 *
 * @throws FaceError E_INPUT when the model has no converter (its weights are ONNX already, or
 *   converting them is not supported yet); the converter's errors otherwise
 */
export async function convertModel(descriptor: ModelDescriptor, checkpoint: Uint8Array | string, opts: { name?: string } = {}): Promise<Uint8Array> {
  return converterFor(descriptor)(checkpoint, opts);
}

/**
 * The converter of a model's published weights.
 *
 * @throws FaceError E_INPUT when there is none: the weights are ONNX already, or converting them is
 *   not supported yet
 */
export function converterFor(descriptor: ModelDescriptor): Converter {
  const { converter, format } = descriptor.weights;
  if (converter === null) {
    throw new FaceError(
      'E_INPUT',
      format === 'onnx'
        ? `Model '${descriptor.name}' takes ONNX weights as they are: there is nothing to convert`
        : `Converting '${descriptor.name}' (${format} weights from ${descriptor.weights.source.publisher}) is not yet supported: its descriptor names no converter`,
    );
  }
  return CONVERTERS[converter];
}

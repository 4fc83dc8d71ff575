/**
 * The converters from published weights to ONNX, by the name a descriptor gives in
 * `weights.converter`, and {@link convertModel}, which picks the right one for a model.
 */
import { FaceError } from '../errors';
import type { ConverterName, ModelDescriptor } from '../models/descriptor';
import { convertFaceNetMobileNetV1 } from './facenet';
import { convertMobileFaceNet } from './mobilefacenet';
import { convertRetinaFaceMnet025 } from './retinaface';

export type Converter = (checkpoint: Uint8Array | string, opts?: { name?: string }) => Promise<Uint8Array>;

/** One entry per name in CONVERTER_NAMES (the type makes a missing one a compile error). */
export const CONVERTERS: Readonly<Record<ConverterName, Converter>> = {
  'retinaface-mnet025': convertRetinaFaceMnet025,
  'facenet-mobilenetv1': convertFaceNetMobileNetV1,
  mobilefacenet: convertMobileFaceNet,
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

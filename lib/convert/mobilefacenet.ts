/**
 * Converts Xiaoccer/MobileFaceNet_Pytorch checkpoints (`{'epoch', 'net_state_dict'}`, legacy or zip
 * torch.save) into an ONNX model: the graph of {@link buildMobileFaceNet} with the checkpoint's
 * tensors as initializers. Exactly the graph's weights are required (see {@link mobileFaceNetKeys});
 * anything missing, extra or misshapen is a FaceError E_MODEL naming the key.
 *
 * The weights this project can read (`weights/embedding_candidate/` of the evaluation data) carry no
 * license: they are used for tests and evaluation, never shipped.
 */
import { buildMobileFaceNet, mobileFaceNetKeys } from '../graphs/mobilefacenet';
import { torchConverter, type TorchConverterOptions } from './state-dict';

export type ConvertMobileFaceNetOptions = TorchConverterOptions;

const converter = torchConverter(
  'convertMobileFaceNet',
  () => ({
    modelName: 'MobileFaceNet (Xiaoccer/MobileFaceNet_Pytorch)',
    expected: new Map(mobileFaceNetKeys().map((k) => [k.key, k.dims] as const)),
  }),
  (weights, model) => buildMobileFaceNet({ weights, ...model }),
);

/** Checkpoint bytes or path → ONNX bytes (input `input` [N,3,112,96], output `embedding` [N,128]). */
export const convertMobileFaceNet = converter.convert;
/** @internal the conversion after reading (tests feed modified state dicts). */
export const convertMobileFaceNetFromTensors = converter.fromTensors;

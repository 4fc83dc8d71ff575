/**
 * Converts the published RetinaFace MobileNet-0.25 weights (biubug6/Pytorch_Retinaface
 * `mobilenet0.25_Final.pth`, cfg_mnet) into an ONNX model: the graph of
 * {@link buildRetinaFaceMnet025} with the checkpoint's tensors as its initializers.
 *
 * The checkpoint must hold exactly the weights that graph consumes (see {@link retinaFaceKeys}):
 * a `module.` prefix on every key (nn.DataParallel) is removed and BatchNorm `num_batches_tracked`
 * counters are ignored; any other missing or extra tensor, a wrong shape or a non-float dtype is a
 * FaceError E_MODEL, so that no weight is ever left random or silently dropped. float16, bfloat16 and
 * float64 tensors are converted to float32.
 */
import { buildRetinaFaceMnet025, retinaFaceKeys } from '../graphs/retinaface';
import { torchConverter, type TorchConverterOptions } from './state-dict';

export type ConvertRetinaFaceOptions = TorchConverterOptions;

const converter = torchConverter(
  'convertRetinaFaceMnet025',
  () => ({
    modelName: 'RetinaFace MobileNet-0.25 (Pytorch_Retinaface cfg_mnet)',
    expected: new Map(retinaFaceKeys().map((k) => [k.key, k.dims] as const)),
    hint: (keys) =>
      keys.some((k) => k.startsWith('stage1.')) && !keys.some((k) => k.startsWith('body.'))
        ? 'keys start with stage1.: an ImageNet MobileNetV1 backbone, not the whole RetinaFace'
        : undefined,
  }),
  (weights, model) => buildRetinaFaceMnet025({ weights, ...model }),
);

/**
 * Converts a Pytorch_Retinaface mobilenet0.25 checkpoint (legacy or zip `torch.save` file; a plain
 * state dict or a training checkpoint holding one) into the bytes of an ONNX model with input
 * `input0` [N,3,H,W] (BGR minus (104,117,123)) and outputs `loc`, `conf` (softmax), `landms`.
 *
 * @throws FaceError E_INPUT for a wrong argument or an unreadable file; E_MODEL when the file is not a
 *   checkpoint or its weights are not exactly those of RetinaFace mnet0.25
 */
export const convertRetinaFaceMnet025 = converter.convert;
/** @internal the conversion after reading: tests build modified state dicts from a real one. */
export const convertFromTensors = converter.fromTensors;

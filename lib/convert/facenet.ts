/**
 * Converts FaceNet MobileNetV1 checkpoints with the key names of the seed's reference implementation
 * (bubbliiiing/facenet-pytorch, `nets/facenet.py` + `nets/mobilenet.py`, published as
 * `facenet_mobilenet.pth`) into an ONNX model: the graph of {@link buildFaceNetMobileNetV1} with the
 * checkpoint's tensors as its initializers.
 *
 * The checkpoint must hold exactly the weights that graph consumes (see {@link faceNetKeys}): the
 * backbone `backbone.model.stage{1,2,3}.*`, `Bottleneck.weight` and `last_bn.*`. Tolerated beyond
 * those: a `module.` prefix on every key (nn.DataParallel), BatchNorm `num_batches_tracked` counters,
 * and the training-only classifier head `classifier.weight` [classes, 128] / `classifier.bias`
 * [classes] that train.py saves with every checkpoint (the reference's predict mode has no classifier
 * and loads with strict=False). Anything else missing or extra, a wrong shape or a non-float dtype
 * is a FaceError E_MODEL naming the key.
 *
 * No published FaceNet weights are reachable from this project's machines: the mapping is tested with
 * a synthetic checkpoint that has the reference's exact key set (test/convert-facenet.test.ts).
 */
import { buildFaceNetMobileNetV1, faceNetKeys, FACENET_EMBEDDING_SIZE } from '../graphs/facenet';
import type { TorchTensor } from './torch-checkpoint';
import { torchConverter, type TorchConverterOptions } from './state-dict';

export type ConvertFaceNetOptions = TorchConverterOptions;

const converter = torchConverter(
  'convertFaceNetMobileNetV1',
  () => ({
    modelName: 'FaceNet MobileNetV1 (bubbliiiing/facenet-pytorch)',
    expected: new Map(faceNetKeys().map((k) => [k.key, k.dims] as const)),
    ignore: ignoreClassifier,
    hint: (keys) => {
      if (keys.some((k) => k.startsWith('backbone.model.conv2d_1a.') || k.startsWith('backbone.model.repeat_1.'))) {
        return 'this is the Inception-ResNet-v1 FaceNet (facenet_inception_resnetv1.pth), which is not supported; use facenet_mobilenet.pth';
      }
      if (keys.some((k) => k.startsWith('stage1.')) && !keys.some((k) => k.startsWith('backbone.'))) {
        return 'keys start with stage1.: an ImageNet MobileNetV1 backbone, not the whole FaceNet';
      }
      return undefined;
    },
  }),
  (weights, model) => buildFaceNetMobileNetV1({ weights, ...model }),
);

/** train.py's classifier head: dropped when it has the shape of nn.Linear(128, classes). */
function ignoreClassifier(key: string, tensor: TorchTensor, all: ReadonlyMap<string, TorchTensor>): { drop: true } | { error: string } | undefined {
  if (key !== 'classifier.weight' && key !== 'classifier.bias') return undefined;
  const weight = all.get('classifier.weight');
  const classes = weight?.dims[0];
  if (key === 'classifier.weight') {
    if (tensor.dims.length !== 2 || tensor.dims[1] !== FACENET_EMBEDDING_SIZE) {
      return { error: `Expected dims [classes, ${FACENET_EMBEDDING_SIZE}] for the training-only tensor 'classifier.weight' but received [${tensor.dims.join(', ')}]` };
    }
  } else if (tensor.dims.length !== 1 || (classes !== undefined && tensor.dims[0] !== classes)) {
    return { error: `Expected dims [${classes ?? 'classes'}] for the training-only tensor 'classifier.bias' but received [${tensor.dims.join(', ')}]` };
  }
  return { drop: true };
}

/**
 * Converts a bubbliiiing/facenet-pytorch MobileNetV1 checkpoint (legacy or zip `torch.save` file; a
 * plain state dict or a training checkpoint holding one) into the bytes of an ONNX model with input
 * `input` [N,3,160,160] (RGB / 255 after letterbox) and output `embedding` [N,128], L2-normalised.
 *
 * @throws FaceError E_INPUT for a wrong argument or an unreadable file; E_MODEL when the file is not a
 *   checkpoint or its weights are not exactly those of FaceNet MobileNetV1
 */
export const convertFaceNetMobileNetV1 = converter.convert;
/** @internal the conversion after reading: checks a state dict and writes the ONNX bytes. */
export const convertFaceNetFromTensors = converter.fromTensors;

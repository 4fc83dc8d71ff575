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
import type { ModelOptions } from '../onnx/builder';
import { invalidType } from '../errors';
import { buildFaceNetMobileNetV1, faceNetKeys, FACENET_EMBEDDING_SIZE } from '../graphs/facenet';
import type { TorchTensor } from './torch-checkpoint';
import { buildWithWeights, checkStateDict, readCheckpointArgument, type StateDictSpec } from './state-dict';

export interface ConvertFaceNetOptions extends ModelOptions {
  /** A name for the checkpoint in error messages (default: the path, or 'the checkpoint'). */
  name?: string;
}

const MODEL_NAME = 'FaceNet MobileNetV1 (bubbliiiing/facenet-pytorch)';

let spec: StateDictSpec | undefined;

function faceNetSpec(): StateDictSpec {
  spec ??= {
    modelName: MODEL_NAME,
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
  };
  return spec;
}

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
 * @param checkpoint the file's bytes, or its path
 * @throws FaceError E_INPUT for a wrong argument or an unreadable file; E_MODEL when the file is not a
 *   checkpoint or its weights are not exactly those of FaceNet MobileNetV1
 */
export async function convertFaceNetMobileNetV1(checkpoint: Uint8Array | string, opts: ConvertFaceNetOptions = {}): Promise<Uint8Array> {
  if (typeof opts !== 'object' || opts === null) throw invalidType('an options object', 'convertFaceNetMobileNetV1(checkpoint, options)', opts);
  const { tensors, what } = await readCheckpointArgument(checkpoint, opts.name, 'convertFaceNetMobileNetV1');
  return convertFaceNetFromTensors(tensors, { ...opts, name: what });
}

/**
 * The conversion after reading: checks a state dict (key → tensor) against the graph's weights and
 * writes the ONNX bytes.
 *
 * @internal
 */
export function convertFaceNetFromTensors(tensors: ReadonlyMap<string, TorchTensor>, opts: ConvertFaceNetOptions = {}): Uint8Array {
  const what = opts.name ?? 'the checkpoint';
  const weights = checkStateDict(tensors, faceNetSpec(), what);
  const { opset, irVersion, producer, producerVersion, domainVersions } = opts;
  return buildWithWeights(weights, what, MODEL_NAME, (lookup) =>
    buildFaceNetMobileNetV1({ weights: lookup, opset, irVersion, producer, producerVersion, domainVersions }),
  );
}

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
import { invalidType } from '../errors';
import type { ModelOptions } from '../onnx/builder';
import { buildRetinaFaceMnet025, retinaFaceKeys } from '../graphs/retinaface';
import type { TorchTensor } from './torch-checkpoint';
import { buildWithWeights, checkStateDict, readCheckpointArgument, type StateDictSpec } from './state-dict';

export interface ConvertRetinaFaceOptions extends ModelOptions {
  /** A name for the checkpoint in error messages (default: the path, or 'the checkpoint'). */
  name?: string;
}

const MODEL_NAME = 'RetinaFace MobileNet-0.25 (Pytorch_Retinaface cfg_mnet)';

let spec: StateDictSpec | undefined;

function retinaFaceSpec(): StateDictSpec {
  spec ??= {
    modelName: MODEL_NAME,
    expected: new Map(retinaFaceKeys().map((k) => [k.key, k.dims] as const)),
    hint: (keys) =>
      keys.some((k) => k.startsWith('stage1.')) && !keys.some((k) => k.startsWith('body.'))
        ? 'keys start with stage1.: an ImageNet MobileNetV1 backbone, not the whole RetinaFace'
        : undefined,
  };
  return spec;
}

/**
 * Converts a Pytorch_Retinaface mobilenet0.25 checkpoint (legacy or zip `torch.save` file; a plain
 * state dict or a training checkpoint holding one) into the bytes of an ONNX model with input
 * `input0` [N,3,H,W] (BGR minus (104,117,123)) and outputs `loc`, `conf` (softmax), `landms`.
 *
 * @param checkpoint the file's bytes, or its path
 * @throws FaceError E_INPUT for a wrong argument or an unreadable file; E_MODEL when the file is not a
 *   checkpoint or its weights are not exactly those of RetinaFace mnet0.25
 */
export async function convertRetinaFaceMnet025(checkpoint: Uint8Array | string, opts: ConvertRetinaFaceOptions = {}): Promise<Uint8Array> {
  if (typeof opts !== 'object' || opts === null) throw invalidType('an options object', 'convertRetinaFaceMnet025(checkpoint, options)', opts);
  const { tensors, what } = await readCheckpointArgument(checkpoint, opts.name, 'convertRetinaFaceMnet025');
  return convertFromTensors(tensors, { ...opts, name: what });
}

/**
 * The conversion after reading: checks a state dict (key → tensor) against the graph's weights and
 * writes the ONNX bytes. Exposed for tests, which build modified state dicts from a real one.
 *
 * @internal
 */
export function convertFromTensors(tensors: ReadonlyMap<string, TorchTensor>, opts: ConvertRetinaFaceOptions = {}): Uint8Array {
  const what = opts.name ?? 'the checkpoint';
  const weights = checkStateDict(tensors, retinaFaceSpec(), what);
  const { opset, irVersion, producer, producerVersion, domainVersions } = opts;
  return buildWithWeights(weights, what, MODEL_NAME, (lookup) =>
    buildRetinaFaceMnet025({ weights: lookup, opset, irVersion, producer, producerVersion, domainVersions }),
  );
}

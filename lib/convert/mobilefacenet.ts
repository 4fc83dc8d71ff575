/**
 * Converts Xiaoccer/MobileFaceNet_Pytorch checkpoints (`{'epoch', 'net_state_dict'}`, legacy or zip
 * torch.save) into an ONNX model: the graph of {@link buildMobileFaceNet} with the checkpoint's
 * tensors as initializers. Exactly the graph's weights are required (see {@link mobileFaceNetKeys});
 * anything missing, extra or misshapen is a FaceError E_MODEL naming the key.
 *
 * The weights this project can read (`weights/embedding_candidate/` of the evaluation data) carry no
 * license: they are used for tests and evaluation, never shipped.
 */
import { invalidType } from '../errors';
import type { ModelOptions } from '../onnx/builder';
import { buildMobileFaceNet, mobileFaceNetKeys } from '../graphs/mobilefacenet';
import type { TorchTensor } from './torch-checkpoint';
import { buildWithWeights, checkStateDict, readCheckpointArgument, type StateDictSpec } from './state-dict';

export interface ConvertMobileFaceNetOptions extends ModelOptions {
  /** A name for the checkpoint in error messages (default: the path, or 'the checkpoint'). */
  name?: string;
}

const MODEL_NAME = 'MobileFaceNet (Xiaoccer/MobileFaceNet_Pytorch)';

let spec: StateDictSpec | undefined;

function mobileFaceNetSpec(): StateDictSpec {
  spec ??= { modelName: MODEL_NAME, expected: new Map(mobileFaceNetKeys().map((k) => [k.key, k.dims] as const)) };
  return spec;
}

export async function convertMobileFaceNet(checkpoint: Uint8Array | string, opts: ConvertMobileFaceNetOptions = {}): Promise<Uint8Array> {
  if (typeof opts !== 'object' || opts === null) throw invalidType('an options object', 'convertMobileFaceNet(checkpoint, options)', opts);
  const { tensors, what } = await readCheckpointArgument(checkpoint, opts.name, 'convertMobileFaceNet');
  return convertMobileFaceNetFromTensors(tensors, { ...opts, name: what });
}

/** @internal the conversion after reading (tests feed modified state dicts). */
export function convertMobileFaceNetFromTensors(tensors: ReadonlyMap<string, TorchTensor>, opts: ConvertMobileFaceNetOptions = {}): Uint8Array {
  const what = opts.name ?? 'the checkpoint';
  const weights = checkStateDict(tensors, mobileFaceNetSpec(), what);
  const { opset, irVersion, producer, producerVersion, domainVersions } = opts;
  return buildWithWeights(weights, what, MODEL_NAME, (lookup) =>
    buildMobileFaceNet({ weights: lookup, opset, irVersion, producer, producerVersion, domainVersions }),
  );
}

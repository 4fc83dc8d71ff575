// FaceNet-MobileNetV1 converter (bubbliiiing/facenet-pytorch key names). No published weights are
// reachable here, so every check uses a synthetic zip-format checkpoint with the reference's exact
// key set (transcribed below from its nets/mobilenet.py and nets/facenet.py, independently of
// lib/graphs/facenet.ts) and seeded random values:
//   (a) every weight initializer of the ONNX equals the checkpoint tensor of the same key, bit for bit
//       (decoded from the ONNX bytes by a separate reader);
//   (b) onnxruntime-node and facesight's engine agree on a 2×3×160×160 batch, and the rows are unit-norm;
//   (c) both agree with a plain-JS float64 forward pass of the reference network computed from the
//       checkpoint's tensors (conv_bn, 13 conv_dw, average pool, Bottleneck, last_bn, normalize).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { FaceError } from '../lib/errors';
import { convertFaceNetMobileNetV1 } from '../lib/convert/facenet';
import { faceNetKeys } from '../lib/graphs/facenet';
import { retinaFaceKeys } from '../lib/graphs/retinaface';
import { loadModel } from '../lib/engine';
import { SeededRandom } from '../lib/onnx/random';
import { torchSave, type SavedTensor } from './helpers/torch-writer';
import { readOnnxGraph } from './helpers/onnx-reader';

// Tolerances. Embeddings are unit vectors of 128 values (|v| ~ 0.09 on average).
/** facesight vs onnxruntime, per element: both fp32, differing only in summation order. */
const ENGINE_ATOL = 1e-5;
/** Either fp32 engine vs the float64 JS reference, per element, after 28 conv layers. */
const REFERENCE_ATOL = 1e-5;

// ---------------------------------------------------------------------------------------------
// The reference network, from bubbliiiing/facenet-pytorch:
//   mobilenet.py: conv_bn(inp, oup, s) = Sequential(Conv2d(inp, oup, 3, s, 1, bias=False), BatchNorm2d(oup), ReLU6())
//                 conv_dw(inp, oup, s) = Sequential(Conv2d(inp, inp, 3, s, 1, groups=inp, bias=False), BatchNorm2d(inp), ReLU6(),
//                                                   Conv2d(inp, oup, 1, 1, 0, bias=False), BatchNorm2d(oup), ReLU6())
//                 stage1 = [conv_bn(3,32,2), conv_dw(32,64,1), conv_dw(64,128,2), conv_dw(128,128,1), conv_dw(128,256,2), conv_dw(256,256,1)]
//                 stage2 = [conv_dw(256,512,2), conv_dw(512,512,1) x5]; stage3 = [conv_dw(512,1024,2), conv_dw(1024,1024,1)]
//   facenet.py:   backbone = mobilenet() (its MobileNetV1 as .model, fc and avg deleted); avg = AdaptiveAvgPool2d(1);
//                 Bottleneck = Linear(1024, 128, bias=False); last_bn = BatchNorm1d(128, eps=0.001);
//                 classifier = Linear(128, num_classes) in train mode only; forward: F.normalize(last_bn(...), p=2, dim=1).

interface RefLayer {
  key: string;
  kind: 'conv_bn' | 'conv_dw';
  inC: number;
  outC: number;
  stride: number;
}

const REF_LAYERS: RefLayer[] = (() => {
  const stages: [string, [number, number, number][]][] = [
    ['stage1', [[3, 32, 2], [32, 64, 1], [64, 128, 2], [128, 128, 1], [128, 256, 2], [256, 256, 1]]],
    ['stage2', [[256, 512, 2], [512, 512, 1], [512, 512, 1], [512, 512, 1], [512, 512, 1], [512, 512, 1]]],
    ['stage3', [[512, 1024, 2], [1024, 1024, 1]]],
  ];
  const layers: RefLayer[] = [];
  for (const [stage, blocks] of stages) {
    blocks.forEach(([inC, outC, stride], i) => {
      layers.push({ key: `backbone.model.${stage}.${i}`, kind: stage === 'stage1' && i === 0 ? 'conv_bn' : 'conv_dw', inC, outC, stride });
    });
  }
  return layers;
})();

type StateDict = [string, SavedTensor][];

/** The reference's state_dict, in registration order, with seeded random values. */
function referenceStateDict(seed: number, o: { classifier?: number } = {}): StateDict {
  const rng = new SeededRandom(seed);
  const out: StateDict = [];
  const f32 = (key: string, dims: number[], data: Float32Array) => out.push([key, { dtype: 'float32', dims, data }]);
  const conv = (key: string, dims: number[]) => {
    const fanIn = dims.slice(1).reduce((a, b) => a * b, 1);
    f32(`${key}.weight`, dims, rng.normalArray(dims.reduce((a, b) => a * b, 1), 0, Math.sqrt(2 / fanIn)));
  };
  const bn = (key: string, c: number) => {
    f32(`${key}.weight`, [c], rng.uniformArray(c, 0.5, 1.5));
    f32(`${key}.bias`, [c], rng.normalArray(c, 0, 0.1));
    f32(`${key}.running_mean`, [c], rng.normalArray(c, 0, 0.1));
    f32(`${key}.running_var`, [c], rng.uniformArray(c, 0.5, 1.5));
    out.push([`${key}.num_batches_tracked`, { dtype: 'int64', dims: [], data: [BigInt(1000 + c)] }]);
  };
  for (const l of REF_LAYERS) {
    if (l.kind === 'conv_bn') {
      conv(`${l.key}.0`, [l.outC, l.inC, 3, 3]);
      bn(`${l.key}.1`, l.outC);
    } else {
      conv(`${l.key}.0`, [l.inC, 1, 3, 3]);
      bn(`${l.key}.1`, l.inC);
      conv(`${l.key}.3`, [l.outC, l.inC, 1, 1]);
      bn(`${l.key}.4`, l.outC);
    }
  }
  f32('Bottleneck.weight', [128, 1024], rng.normalArray(128 * 1024, 0, Math.sqrt(1 / 1024)));
  bn('last_bn', 128);
  if (o.classifier) {
    f32('classifier.weight', [o.classifier, 128], rng.normalArray(o.classifier * 128, 0, 0.1));
    f32('classifier.bias', [o.classifier], rng.normalArray(o.classifier, 0, 0.1));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Plain-JS float64 forward pass of the reference network, straight from the state dict.

type Weights = Map<string, Float32Array>;

function bnRelu6(x: Float64Array, channels: number, plane: number, w: Weights, key: string, eps: number, relu6: boolean): void {
  const gamma = w.get(`${key}.weight`)!;
  const beta = w.get(`${key}.bias`)!;
  const mean = w.get(`${key}.running_mean`)!;
  const variance = w.get(`${key}.running_var`)!;
  for (let c = 0; c < channels; c++) {
    const scale = gamma[c] / Math.sqrt(variance[c] + eps);
    const shift = beta[c] - mean[c] * scale;
    for (let p = c * plane; p < (c + 1) * plane; p++) {
      const v = x[p] * scale + shift;
      x[p] = relu6 ? Math.min(6, Math.max(0, v)) : v;
    }
  }
}

/** 3×3 convolution, padding 1, dense (groups 1) or depthwise (groups = channels). */
function conv3x3(x: Float64Array, inC: number, h: number, wd: number, weight: Float32Array, outC: number, stride: number, depthwise: boolean) {
  const oh = Math.floor((h + 2 - 3) / stride) + 1;
  const ow = Math.floor((wd + 2 - 3) / stride) + 1;
  const y = new Float64Array(outC * oh * ow);
  for (let co = 0; co < outC; co++) {
    const cis = depthwise ? [co] : Array.from({ length: inC }, (_, i) => i);
    for (const ci of cis) {
      const wBase = depthwise ? co * 9 : (co * inC + ci) * 9;
      const xBase = ci * h * wd;
      for (let ky = 0; ky < 3; ky++) {
        for (let kx = 0; kx < 3; kx++) {
          const k = weight[wBase + ky * 3 + kx];
          for (let oy = 0; oy < oh; oy++) {
            const iy = oy * stride + ky - 1;
            if (iy < 0 || iy >= h) continue;
            const yRow = (co * oh + oy) * ow;
            const xRow = xBase + iy * wd;
            for (let ox = 0; ox < ow; ox++) {
              const ix = ox * stride + kx - 1;
              if (ix >= 0 && ix < wd) y[yRow + ox] += k * x[xRow + ix];
            }
          }
        }
      }
    }
  }
  return { y, h: oh, w: ow };
}

function conv1x1(x: Float64Array, inC: number, plane: number, weight: Float32Array, outC: number): Float64Array {
  const y = new Float64Array(outC * plane);
  for (let co = 0; co < outC; co++) {
    const yBase = co * plane;
    for (let ci = 0; ci < inC; ci++) {
      const k = weight[co * inC + ci];
      const xBase = ci * plane;
      for (let p = 0; p < plane; p++) y[yBase + p] += k * x[xBase + p];
    }
  }
  return y;
}

/** One image [3,160,160] → its 128-d embedding. */
function referenceForward(image: Float32Array, w: Weights): Float64Array {
  let x = Float64Array.from(image);
  let h = 160;
  let wd = 160;
  for (const l of REF_LAYERS) {
    if (l.kind === 'conv_bn') {
      const r = conv3x3(x, l.inC, h, wd, w.get(`${l.key}.0.weight`)!, l.outC, l.stride, false);
      ({ y: x, h, w: wd } = r);
      bnRelu6(x, l.outC, h * wd, w, `${l.key}.1`, 1e-5, true);
    } else {
      const r = conv3x3(x, l.inC, h, wd, w.get(`${l.key}.0.weight`)!, l.inC, l.stride, true);
      ({ y: x, h, w: wd } = r);
      bnRelu6(x, l.inC, h * wd, w, `${l.key}.1`, 1e-5, true);
      x = conv1x1(x, l.inC, h * wd, w.get(`${l.key}.3.weight`)!, l.outC);
      bnRelu6(x, l.outC, h * wd, w, `${l.key}.4`, 1e-5, true);
    }
  }
  const plane = h * wd;
  const pooled = new Float64Array(1024);
  for (let c = 0; c < 1024; c++) {
    let s = 0;
    for (let p = 0; p < plane; p++) s += x[c * plane + p];
    pooled[c] = s / plane;
  }
  const bottleneck = w.get('Bottleneck.weight')!;
  const e = new Float64Array(128);
  for (let o = 0; o < 128; o++) {
    let s = 0;
    for (let i = 0; i < 1024; i++) s += bottleneck[o * 1024 + i] * pooled[i];
    e[o] = s;
  }
  bnRelu6(e, 128, 1, w, 'last_bn', 1e-3, false);
  const norm = Math.max(Math.hypot(...e), 1e-12);
  return e.map((v) => v / norm);
}

// ---------------------------------------------------------------------------------------------
// Helpers

function float32Weights(sd: StateDict): Weights {
  return new Map(sd.filter(([, v]) => v.dtype === 'float32').map(([k, v]) => [k, v.data as Float32Array]));
}

async function expectModelError(t: Tap.Test, promise: Promise<unknown>, message: RegExp, what: string, code = 'E_MODEL') {
  try {
    await promise;
    t.fail(`${what}: expected a rejection`);
  } catch (error) {
    t.ok(error instanceof FaceError && (error as FaceError).code === code, `${what}: a FaceError ${code} (got ${String(error)})`);
    t.match((error as Error).message, message, `${what}: message`);
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** Two different images, RGB / 255 in [0, 1]: uniform noise, and smooth colour ramps. */
function inputBatch(): Float32Array {
  const plane = 160 * 160;
  const data = new Float32Array(2 * 3 * plane);
  data.set(new SeededRandom(11).uniformArray(3 * plane, 0, 1), 0);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 160; y++) {
      for (let x = 0; x < 160; x++) data[3 * plane + c * plane + y * 160 + x] = (0.5 + 0.5 * Math.sin((x * (c + 1) + y * 2) / 23)) * 0.9;
    }
  }
  return data;
}

const SEED = 20240601;
const STATE_DICT = referenceStateDict(SEED);
const CHECKPOINT = torchSave(STATE_DICT);

// ---------------------------------------------------------------------------------------------

t.test('invalid input', async (t) => {
  await t.rejects(convertFaceNetMobileNetV1(42 as unknown as string), { name: 'TypeError', code: 'E_INPUT', message: /^Expected a file path or a Uint8Array of checkpoint bytes for convertFaceNetMobileNetV1\(checkpoint\) but received number 42$/ }, 'not bytes or a path');
  await t.rejects(convertFaceNetMobileNetV1(CHECKPOINT, null as never), { name: 'TypeError', code: 'E_INPUT' }, 'null options');
  await expectModelError(t, convertFaceNetMobileNetV1(path.join(os.tmpdir(), 'facesight-no-such-file.pth')), /^Cannot read checkpoint file '.*facesight-no-such-file\.pth': ENOENT/, 'no such file', 'E_INPUT');

  // A truncated checkpoint.
  await expectModelError(t, convertFaceNetMobileNetV1(CHECKPOINT.subarray(0, CHECKPOINT.length >> 1), { name: 'facenet.pth' }), /^Malformed PyTorch checkpoint \(facenet\.pth\): /, 'truncated (half)');
  await expectModelError(t, convertFaceNetMobileNetV1(CHECKPOINT.subarray(0, CHECKPOINT.length - 1), { name: 'facenet.pth' }), /^Malformed PyTorch checkpoint \(facenet\.pth\): /, 'truncated (last byte)');

  // A missing key, a wrong shape, an extra key: each named.
  const without = STATE_DICT.filter(([k]) => k !== 'last_bn.running_var');
  await expectModelError(t, convertFaceNetMobileNetV1(torchSave(without), { name: 'facenet.pth' }),
    /^Expected the 140 weights of FaceNet MobileNetV1 \(bubbliiiing\/facenet-pytorch\) in facenet\.pth, but it is missing the weight 'last_bn\.running_var' \[128\]$/, 'missing key');
  const transposed = STATE_DICT.map(([k, v]): [string, SavedTensor] => (k === 'Bottleneck.weight' ? [k, { ...v, dims: [1024, 128] }] : [k, v]));
  await expectModelError(t, convertFaceNetMobileNetV1(torchSave(transposed), { name: 'facenet.pth' }),
    /^Expected dims \[128, 1024\] for weight 'Bottleneck\.weight' of facenet\.pth but received \[1024, 128\]$/, 'wrong shape');
  const extra: StateDict = [...STATE_DICT, ['backbone.model.fc.weight', { dtype: 'float32', dims: [1000, 1024], data: new Float32Array(1000 * 1024) }]];
  await expectModelError(t, convertFaceNetMobileNetV1(torchSave(extra), { name: 'facenet.pth' }),
    /^Expected the 140 weights of FaceNet MobileNetV1 \(bubbliiiing\/facenet-pytorch\) in facenet\.pth, but it has the unexpected tensor 'backbone\.model\.fc\.weight' \[1000, 1024\]$/, 'extra key');
  const intWeight = STATE_DICT.map(([k, v]): [string, SavedTensor] => (k === 'last_bn.bias' ? [k, { dtype: 'int64', dims: [128], data: Array.from({ length: 128 }, () => 0n) }] : [k, v]));
  await expectModelError(t, convertFaceNetMobileNetV1(torchSave(intWeight), { name: 'facenet.pth' }),
    /^Expected a floating-point tensor .* for weight 'last_bn\.bias' of facenet\.pth but received int64$/, 'integer weight');
  const badClassifier: StateDict = [...STATE_DICT, ['classifier.weight', { dtype: 'float32', dims: [10, 64], data: new Float32Array(640) }]];
  await expectModelError(t, convertFaceNetMobileNetV1(torchSave(badClassifier), { name: 'facenet.pth' }),
    /^Expected dims \[classes, 128\] for the training-only tensor 'classifier\.weight' but received \[10, 64\] \(in facenet\.pth\)$/, 'classifier head of the wrong shape');

  // Other models' checkpoints.
  const zeros = (dims: number[]): SavedTensor => ({ dtype: 'float32', dims, data: new Float32Array(dims.reduce((a, b) => a * b, 1)) });
  const retina = retinaFaceKeys().map((k): [string, SavedTensor] => [k.key, zeros(k.dims)]);
  await expectModelError(t, convertFaceNetMobileNetV1(torchSave(retina), { name: 'retina.pth' }),
    /^Expected the 140 weights .* in retina\.pth, but it is missing 140 weights: .* and has \d+ unexpected tensors: .* \(none of the expected keys is present: not a FaceNet MobileNetV1 \(bubbliiiing\/facenet-pytorch\) state dict\)$/, 'a RetinaFace checkpoint');
  const inception: StateDict = [['backbone.model.conv2d_1a.conv.weight', zeros([32, 3, 3, 3])], ['Bottleneck.weight', zeros([128, 1792])]];
  await expectModelError(t, convertFaceNetMobileNetV1(torchSave(inception), { name: 'inc.pth' }), /\(this is the Inception-ResNet-v1 FaceNet \(facenet_inception_resnetv1\.pth\), which is not supported; use facenet_mobilenet\.pth\)$/, 'the Inception-ResNet-v1 FaceNet');
});

t.test("the reference's key set is the graph's", async (t) => {
  const graphKeys = faceNetKeys();
  const reference = STATE_DICT.filter(([k]) => !k.endsWith('.num_batches_tracked'));
  t.equal(STATE_DICT.length, 140 + 28, '140 weights + 28 BatchNorm counters');
  t.same(reference.map(([k, v]) => ({ key: k, dims: [...v.dims] })), graphKeys, 'same keys, dims and order');
});

t.test('(a) every initializer is the checkpoint tensor of the same key', async (t) => {
  const bytes = await convertFaceNetMobileNetV1(CHECKPOINT);
  const graph = readOnnxGraph(bytes);
  t.same(graph.inputs, ['input'], 'graph input');
  t.same(graph.outputs, ['embedding'], 'graph output');
  const expected = float32Weights(STATE_DICT);
  const byName = new Map(graph.initializers.map((i) => [i.name, i]));
  const wrong: string[] = [];
  for (const [key, data] of expected) {
    const init = byName.get(key);
    if (!init) wrong.push(`${key}: no initializer`);
    else if (init.dataType !== 1) wrong.push(`${key}: data type ${init.dataType}`);
    else if (JSON.stringify(init.dims) !== JSON.stringify(STATE_DICT.find(([k]) => k === key)![1].dims)) wrong.push(`${key}: dims [${init.dims}]`);
    else if (!Buffer.from(init.data.buffer, init.data.byteOffset, init.data.byteLength).equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) wrong.push(`${key}: values differ`);
  }
  t.same(wrong, [], `all ${expected.size} checkpoint weights are initializers with the same dims and bits`);
  const others = graph.initializers.filter((i) => !expected.has(i.name)).map((i) => i.name);
  t.ok(others.every((n) => n.startsWith('const_')), `the only other initializers are graph constants (${others.join(', ')})`);
  const consumed = new Set(graph.nodes.flatMap((n) => n.inputs));
  t.ok([...expected.keys()].every((k) => consumed.has(k)), 'every weight feeds a node');
});

t.test('(b) onnxruntime and facesight agree; (c) both match a float64 JS reference', async (t) => {
  const bytes = await convertFaceNetMobileNetV1(CHECKPOINT);
  const dims = [2, 3, 160, 160];
  const input = inputBatch();
  const session = await ort.InferenceSession.create(bytes);
  const theirs = (await session.run({ input: new ort.Tensor('float32', input, dims) })).embedding!;
  const model = await loadModel(bytes, { threads: 2 });
  const ours = (await model.run({ input: { data: input, dims } })).embedding!;
  model.dispose();
  t.same([...theirs.dims], [2, 128], 'onnxruntime: [2, 128]');
  t.same([...ours.dims], [2, 128], 'facesight: [2, 128]');
  const a = theirs.data as Float32Array;
  const b = ours.data;
  const engineDiff = maxAbsDiff(a, b);
  t.ok(engineDiff <= ENGINE_ATOL, `facesight vs onnxruntime: max |diff| ${engineDiff.toExponential(2)} <= ${ENGINE_ATOL}`);

  const weights = float32Weights(STATE_DICT);
  for (let r = 0; r < 2; r++) {
    const rowA = a.subarray(r * 128, (r + 1) * 128);
    const rowB = b.subarray(r * 128, (r + 1) * 128);
    t.ok(Math.abs(Math.hypot(...rowA) - 1) < 1e-5, `row ${r}: onnxruntime output has unit L2 norm (${Math.hypot(...rowA)})`);
    t.ok(Math.abs(Math.hypot(...rowB) - 1) < 1e-5, `row ${r}: facesight output has unit L2 norm (${Math.hypot(...rowB)})`);
    const reference = referenceForward(input.subarray(r * 3 * 160 * 160, (r + 1) * 3 * 160 * 160), weights);
    const refDiffA = maxAbsDiff(rowA, reference);
    const refDiffB = maxAbsDiff(rowB, reference);
    t.ok(refDiffA <= REFERENCE_ATOL, `row ${r}: onnxruntime vs JS reference: max |diff| ${refDiffA.toExponential(2)} <= ${REFERENCE_ATOL}`);
    t.ok(refDiffB <= REFERENCE_ATOL, `row ${r}: facesight vs JS reference: max |diff| ${refDiffB.toExponential(2)} <= ${REFERENCE_ATOL}`);
  }
  // The comparison is not vacuous: different images, or one mis-mapped weight, move the output far
  // more than the tolerance (a deep random network's embeddings vary less with the input than a
  // trained one's, hence a margin of 100x rather than more).
  const rowsDiffer = maxAbsDiff(a.subarray(0, 128), a.subarray(128));
  t.ok(rowsDiffer > 100 * REFERENCE_ATOL, `the two images' embeddings differ by max |diff| ${rowsDiffer.toExponential(2)} > 100 x tolerance`);
  const swapped = new Map(weights);
  swapped.set('backbone.model.stage1.1.1.running_mean', weights.get('backbone.model.stage1.1.1.bias')!);
  swapped.set('backbone.model.stage1.1.1.bias', weights.get('backbone.model.stage1.1.1.running_mean')!);
  const mutated = maxAbsDiff(a.subarray(0, 128), referenceForward(input.subarray(0, 3 * 160 * 160), swapped));
  t.ok(mutated > 100 * REFERENCE_ATOL, `swapping bias and running_mean of one early BatchNorm moves the reference by ${mutated.toExponential(2)} > 100 x tolerance`);
});

t.test('accepted variants convert to the same model', async (t) => {
  const baseline = Buffer.from(await convertFaceNetMobileNetV1(CHECKPOINT));
  const same = async (bytes: Uint8Array | string, what: string) => t.ok(baseline.equals(await convertFaceNetMobileNetV1(bytes)), `${what}: byte-identical ONNX`);
  await same(torchSave(STATE_DICT, { prefix: 'module.' }), "'module.' prefix (nn.DataParallel)");
  await same(torchSave(STATE_DICT, { wrap: 'state_dict' }), "training checkpoint {'epoch', 'state_dict'}");
  await same(torchSave(STATE_DICT, { protocol4: true, deflate: true }), 'pickle protocol 4, DEFLATEd records');
  await same(torchSave(referenceStateDict(SEED, { classifier: 10575 })), "train.py's classifier head [10575, 128] (CASIA-WebFace classes), ignored");
  await same(torchSave(STATE_DICT.filter(([k]) => !k.endsWith('num_batches_tracked'))), 'without num_batches_tracked');
  const asDouble = STATE_DICT.map(([k, v]): [string, SavedTensor] => [k, v.dtype === 'float32' ? { ...v, dtype: 'float64' } : v]);
  await same(torchSave(asDouble), 'float64 tensors (float32-representable values)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facesight-facenet-'));
  try {
    const file = path.join(dir, 'facenet_mobilenet.pth');
    fs.writeFileSync(file, CHECKPOINT);
    await same(file, 'a file path');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

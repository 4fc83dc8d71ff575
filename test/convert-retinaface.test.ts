// RetinaFace mnet0.25 converter: bad checkpoints of every kind, then the published weights
// (shared/data/weights/retinaface_mnet025.pth) converted and run at full resolution on the photos of
// reference_detections.txt, on facesight's engine and on onnxruntime-node, with a plain reference of
// Pytorch_Retinaface's post-processing written here (a test oracle, not library code).
//
// Tolerances (from the issue), against reference_detections.txt (an independent NumPy run):
//   - same number of faces (score > 0.5 after NMS 0.4);
//   - each reference face matched to the detection of best IoU: box IoU >= 0.95,
//     every landmark within 1 px (Euclidean distance per point), score within 0.01.
// facesight against onnxruntime on the same input: for each output (loc, conf, landms),
//   max |facesight - onnxruntime| / (max - min of onnxruntime's output) <= 1e-4.
// The reference file rounds coordinates to 0.1 px and scores to 1e-4, and says JPEG decoders may
// differ by ~1 px / ~1e-3 (PNG decodes bit-exactly).
//
// Runtime: both engines run on all four photos (the 2048x922 group photo included); on 2 cores
// the whole file takes well under a minute.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import * as ort from 'onnxruntime-node';
import { FaceError } from '../lib/errors';
import { loadModel } from '../lib/engine';
import { convertFromTensors, convertRetinaFaceMnet025 } from '../lib/convert/retinaface';
import { readTorchCheckpoint, toFloat32, type TorchTensor } from '../lib/convert/torch-checkpoint';
import { buildRetinaFaceMnet025, buildRetinaFaceMnet025Graph, retinaFaceKeys } from '../lib/graphs/retinaface';
import type { WeightTensor } from '../lib/graphs/layers';
import { compareWithReference, parseReference } from './helpers/detections';
import { expectRejects } from './helpers/assertions';
import { dataPath } from './helpers/data';

const MAX_RAW_REL_DIFF = 1e-4;

const SCORE_THRESHOLD = 0.5;
const NMS_THRESHOLD = 0.4;
const MIN_SIZES = [
  [16, 32],
  [64, 128],
  [256, 512],
];
const STEPS = [8, 16, 32];
const VARIANCES = [0.1, 0.2];
const MEAN_BGR = [104, 117, 123];
const THREADS = 2;


// ---------------------------------------------------------------------------------------------
// Helpers

function expectError(t: Tap.Test, fn: () => unknown, code: string, message: RegExp, what: string): void {
  try {
    fn();
    t.fail(`${what}: expected an error`);
  } catch (error) {
    t.ok(error instanceof FaceError, `${what}: a FaceError`);
    t.equal((error as FaceError).code, code, `${what}: code ${code}`);
    t.match((error as Error).message, message, `${what}: message`);
  }
}


/** A state dict with the graph's keys and dims (plus num_batches_tracked counters), small values. */
function fakeStateDict(): Map<string, TorchTensor> {
  const map = new Map<string, TorchTensor>();
  let seed = 1;
  for (const { key, dims } of retinaFaceKeys()) {
    const count = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = (((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 2 ** 24 - 0.5) * 0.2;
    if (key.endsWith('running_var')) data.fill(1);
    map.set(key, { key, dtype: 'float32', dims: [...dims], data });
    if (key.endsWith('.running_var')) {
      const counter = key.replace(/running_var$/, 'num_batches_tracked');
      map.set(counter, { key: counter, dtype: 'int64', dims: [], data: new BigInt64Array([5n]) });
    }
  }
  return map;
}

/** Byte equality (tap's t.same walks a 1.7 MB array element by element, for tens of seconds). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function without(map: Map<string, TorchTensor>, key: string): Map<string, TorchTensor> {
  const copy = new Map(map);
  copy.delete(key);
  return copy;
}

function withTensor(map: Map<string, TorchTensor>, key: string, tensor: Omit<TorchTensor, 'key'>): Map<string, TorchTensor> {
  const copy = new Map(map);
  copy.set(key, { key, ...tensor });
  return copy;
}

// ---------------------------------------------------------------------------------------------
// The post-processing oracle (Pytorch_Retinaface detect.py, cfg_mnet), in float64

interface Detection {
  score: number;
  box: [number, number, number, number];
  landmarks: number[]; // 10 values: x, y of 5 points
}

/** PriorBox: per level, rows y then columns x then the two sizes; [cx, cy, w, h] normalised. */
function priors(height: number, width: number): Float64Array {
  const out: number[] = [];
  STEPS.forEach((step, k) => {
    const fh = Math.ceil(height / step);
    const fw = Math.ceil(width / step);
    for (let i = 0; i < fh; i++) {
      for (let j = 0; j < fw; j++) {
        for (const size of MIN_SIZES[k]) {
          out.push(((j + 0.5) * step) / width, ((i + 0.5) * step) / height, size / width, size / height);
        }
      }
    }
  });
  return Float64Array.from(out);
}

/** decode + decode_landm, scaled to pixels, score > threshold, py_cpu_nms, sorted by score. */
function postProcess(loc: Float32Array, conf: Float32Array, landms: Float32Array, height: number, width: number): Detection[] {
  const prior = priors(height, width);
  const count = prior.length / 4;
  if (loc.length !== count * 4 || conf.length !== count * 2 || landms.length !== count * 10) {
    throw new Error(`output sizes ${loc.length}/${conf.length}/${landms.length} do not match ${count} priors`);
  }
  const candidates: Detection[] = [];
  for (let a = 0; a < count; a++) {
    const score = conf[a * 2 + 1];
    if (!(score > SCORE_THRESHOLD)) continue;
    const [pcx, pcy, pw, ph] = [prior[a * 4], prior[a * 4 + 1], prior[a * 4 + 2], prior[a * 4 + 3]];
    const cx = pcx + loc[a * 4] * VARIANCES[0] * pw;
    const cy = pcy + loc[a * 4 + 1] * VARIANCES[0] * ph;
    const w = pw * Math.exp(loc[a * 4 + 2] * VARIANCES[1]);
    const h = ph * Math.exp(loc[a * 4 + 3] * VARIANCES[1]);
    const x1 = cx - w / 2;
    const y1 = cy - h / 2;
    const box: Detection['box'] = [x1 * width, y1 * height, (x1 + w) * width, (y1 + h) * height];
    const landmarks: number[] = [];
    for (let p = 0; p < 5; p++) {
      landmarks.push((pcx + landms[a * 10 + 2 * p] * VARIANCES[0] * pw) * width);
      landmarks.push((pcy + landms[a * 10 + 2 * p + 1] * VARIANCES[0] * ph) * height);
    }
    candidates.push({ score, box, landmarks });
  }
  candidates.sort((p, q) => q.score - p.score);
  // py_cpu_nms: areas and intersections with the +1 pixel convention.
  const area = (b: Detection['box']) => (b[2] - b[0] + 1) * (b[3] - b[1] + 1);
  const keep: Detection[] = [];
  let order = candidates;
  while (order.length > 0) {
    const [best, ...rest] = order;
    keep.push(best);
    order = rest.filter((d) => {
      const w = Math.max(0, Math.min(best.box[2], d.box[2]) - Math.max(best.box[0], d.box[0]) + 1);
      const h = Math.max(0, Math.min(best.box[3], d.box[3]) - Math.max(best.box[1], d.box[1]) + 1);
      const inter = w * h;
      return inter / (area(best.box) + area(d.box) - inter) <= NMS_THRESHOLD;
    });
  }
  return keep;
}


// ---------------------------------------------------------------------------------------------
// reference_detections.txt


// ---------------------------------------------------------------------------------------------
// Input

/** RGB decode (EXIF rotation applied, alpha dropped, grey replicated) -> BGR minus mean, NCHW. */
async function loadInput(file: string): Promise<{ data: Float32Array; width: number; height: number }> {
  const { data: pixels, info } = await sharp(file).rotate().removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const { width, height, channels } = info;
  if (channels !== 1 && channels !== 3) throw new Error(`${file}: ${channels} channels`);
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    const r = pixels[i * channels];
    const g = channels === 3 ? pixels[i * 3 + 1] : r;
    const b = channels === 3 ? pixels[i * 3 + 2] : r;
    out[i] = b - MEAN_BGR[0];
    out[plane + i] = g - MEAN_BGR[1];
    out[2 * plane + i] = r - MEAN_BGR[2];
  }
  return { data: out, width, height };
}

interface Outputs {
  loc: Float32Array;
  conf: Float32Array;
  landms: Float32Array;
}


// ---------------------------------------------------------------------------------------------
// Tests

t.test('invalid input', async (t) => {
  const fake = fakeStateDict();
  t.doesNotThrow(() => convertFromTensors(fake), 'the fake state dict itself converts');

  const key = 'body.stage2.3.3.weight';
  expectError(t, () => convertFromTensors(without(fake, key), { name: 'fake.pth' }), 'E_MODEL',
    /Expected the 253 weights of RetinaFace .* in fake\.pth, but it is missing the weight 'body\.stage2\.3\.3\.weight' \[128, 128, 1, 1\]/, 'one key missing');
  let many = fake;
  for (const k of ['fpn.output1.0.weight', 'ssh1.conv3X3.0.weight', 'ClassHead.0.conv1x1.bias', 'LandmarkHead.2.conv1x1.weight', 'body.stage3.1.4.running_mean', 'BboxHead.1.conv1x1.bias']) many = without(many, k);
  expectError(t, () => convertFromTensors(many), 'E_MODEL', /is missing 6 weights: 'body\.stage3\.1\.4\.running_mean' \[256\], .*'fpn\.output1\.0\.weight' \[64, 64, 1, 1\], .*\(1 more\)/, 'six keys missing');
  expectError(t, () => convertFromTensors(withTensor(fake, 'body.fc.weight', { dtype: 'float32', dims: [1000, 256], data: new Float32Array(256000) })),
    'E_MODEL', /has the unexpected tensor 'body\.fc\.weight' \[1000, 256\]/, 'an extra weight');
  const renamed = withTensor(without(fake, 'ssh2.conv7x7_3.1.bias'), 'ssh2.conv7X7_3.1.bias', fake.get('ssh2.conv7x7_3.1.bias')!);
  expectError(t, () => convertFromTensors(renamed), 'E_MODEL',
    /is missing the weight 'ssh2\.conv7x7_3\.1\.bias' \[16\] and has the unexpected tensor 'ssh2\.conv7X7_3\.1\.bias' \[16\] \(a different architecture or renamed keys\?\)/, 'a renamed key');
  const other = new Map<string, TorchTensor>([['conv.weight', { key: 'conv.weight', dtype: 'float32', dims: [2], data: new Float32Array(2) }]]);
  expectError(t, () => convertFromTensors(other), 'E_MODEL', /none of the expected keys is present/, 'another model');
  const w = fake.get('body.stage1.0.0.weight')!;
  expectError(t, () => convertFromTensors(withTensor(fake, 'body.stage1.0.0.weight', { dtype: 'float32', dims: [8, 3, 9], data: w.data })), 'E_MODEL',
    /^Expected dims \[8, 3, 3, 3\] for weight 'body\.stage1\.0\.0\.weight' of the checkpoint but received \[8, 3, 9\]$/, 'wrong shape');
  expectError(t, () => convertFromTensors(withTensor(fake, 'LandmarkHead.0.conv1x1.bias', { dtype: 'float32', dims: [10], data: new Float32Array(10) })), 'E_MODEL',
    /Expected dims \[20\] for weight 'LandmarkHead\.0\.conv1x1\.bias' .* but received \[10\]/, 'wrong channel count');
  expectError(t, () => convertFromTensors(withTensor(fake, 'fpn.merge1.1.running_var', { dtype: 'int64', dims: [64], data: new BigInt64Array(64) })), 'E_MODEL',
    /Expected a floating-point tensor .* for weight 'fpn\.merge1\.1\.running_var' of the checkpoint but received int64/, 'integer dtype');
  expectError(t, () => convertFromTensors(withTensor(fake, 'fpn.merge1.1.running_var', { dtype: 'bool', dims: [64], data: new Uint8Array(64) })), 'E_MODEL',
    /but received bool/, 'bool dtype');
  expectError(t, () => convertFromTensors(new Map()), 'E_MODEL', /is missing 253 weights/, 'an empty state dict');
  expectError(t, () => convertFromTensors({} as never), 'E_INPUT', /Expected a Map/, 'not a Map');

  // Accepted variations: a module. prefix on every key, no num_batches_tracked, other float dtypes.
  const plain = convertFromTensors(fake);
  const prefixed = new Map([...fake].map(([k, v]) => [`module.${k}`, { ...v, key: `module.${k}` }]));
  t.ok(sameBytes(convertFromTensors(prefixed), plain), "a 'module.' prefix is removed");
  const noCounters = new Map([...fake].filter(([k]) => !k.endsWith('num_batches_tracked')));
  t.ok(sameBytes(convertFromTensors(noCounters), plain), 'num_batches_tracked is optional');
  const stem = fake.get('body.stage1.0.0.weight')!;
  const asDouble = withTensor(fake, stem.key, { dtype: 'float64', dims: stem.dims, data: Float64Array.from(stem.data as Float32Array) });
  t.ok(sameBytes(convertFromTensors(asDouble), plain), 'a float64 tensor is converted to float32');

  // Bytes and files that are not checkpoints.
  await expectRejects(t, convertRetinaFaceMnet025(new TextEncoder().encode('this is not a checkpoint')), 'E_MODEL', /Expected a PyTorch checkpoint/, 'text bytes');
  await expectRejects(t, convertRetinaFaceMnet025(new Uint8Array(0)), 'E_MODEL', /empty/, 'empty bytes');
  const onnxFile = path.join(os.tmpdir(), `facesight-convert-${process.pid}.onnx`);
  fs.writeFileSync(onnxFile, plain.subarray(0, 4096));
  t.teardown(() => fs.rmSync(onnxFile, { force: true }));
  await expectRejects(t, convertRetinaFaceMnet025(onnxFile), 'E_MODEL', /Expected a PyTorch checkpoint .*'.*facesight-convert-\d+\.onnx'/, 'an ONNX file');
  await expectRejects(t, convertRetinaFaceMnet025(path.join(os.tmpdir(), 'no-such-checkpoint.pth')), 'E_INPUT', /Cannot read checkpoint file/, 'a missing file');
  await t.rejects(convertRetinaFaceMnet025(42 as never), TypeError, 'a number as the checkpoint');
  await t.rejects(convertRetinaFaceMnet025(plain, null as never), TypeError, 'null options');

  t.test('real files', async (t) => {
    const pth = dataPath(t, 'weights/retinaface_mnet025.pth');
    if (!pth) return;
    const bytes = fs.readFileSync(pth);
    for (const cut of [100, 53775, bytes.length - 5]) {
      await expectRejects(t, convertRetinaFaceMnet025(bytes.subarray(0, cut), { name: 'cut.pth' }), 'E_MODEL', /(Malformed|Unsupported) PyTorch checkpoint \(cut\.pth\)/, `truncated to ${cut} bytes`);
    }
    const backbone = dataPath(t, 'weights/mobilenetV1X0.25_pretrain.tar');
    if (!backbone) return;
    // The ImageNet backbone checkpoint: a real checkpoint, the wrong model.
    await expectRejects(t, convertRetinaFaceMnet025(backbone), 'E_MODEL', /is missing 253 weights: .* and has 137 unexpected tensors: 'stage1\.0\.0\.weight'/, 'the backbone checkpoint');
  });
});

t.test('every checkpoint tensor is consumed, and only those', async (t) => {
  const pth = dataPath(t, 'weights/retinaface_mnet025.pth');
  if (!pth) return;
  const tensors = readTorchCheckpoint(fs.readFileSync(pth), 'retinaface_mnet025.pth');
  t.equal(tensors.size, 300, '300 tensors in the file');
  const requested: string[] = [];
  const wrongDims: string[] = [];
  const lookup = (key: string, dims: readonly number[]): WeightTensor | undefined => {
    requested.push(key);
    const tensor = tensors.get(key);
    if (!tensor) return undefined;
    if (tensor.dims.join() !== dims.join()) wrongDims.push(key);
    return { data: toFloat32(tensor), dims: tensor.dims };
  };
  buildRetinaFaceMnet025Graph({ weights: lookup });
  t.same(wrongDims, [], 'every requested tensor has the dims the graph asks for');
  const weights = [...tensors.keys()].filter((k) => !k.endsWith('.num_batches_tracked'));
  t.equal(new Set(requested).size, requested.length, 'no key requested twice');
  t.same([...requested].sort(), [...weights].sort(), 'the graph requests exactly the checkpoint keys minus num_batches_tracked');
  t.equal(weights.length, 253, '253 weights (and 47 num_batches_tracked)');

  // The converter writes exactly the graph built from these weights.
  const floats = new Map(weights.map((k) => [k, { data: toFloat32(tensors.get(k)!), dims: tensors.get(k)!.dims }] as const));
  t.ok(sameBytes(await convertRetinaFaceMnet025(pth), buildRetinaFaceMnet025({ weights: floats })), 'converted bytes = the graph with the checkpoint weights');
});

t.test('reference detections on facesight and onnxruntime', async (t) => {
  const pth = dataPath(t, 'weights/retinaface_mnet025.pth');
  const refFile = dataPath(t, 'weights/reference_detections.txt');
  if (!pth || !refFile) return;
  const reference = parseReference(fs.readFileSync(refFile, 'utf8'));
  t.equal(reference.length, 4, 'four reference images');

  const onnx = await convertRetinaFaceMnet025(pth);
  const model = await loadModel(onnx, { threads: THREADS });
  t.teardown(() => model.dispose());
  const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: THREADS, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  t.teardown(() => session.release());

  for (const image of reference) {
    t.test(image.file, async (t) => {
      const file = dataPath(t, image.file);
      if (!file) return;
      const input = await loadInput(file);
      t.same([input.width, input.height], [image.width, image.height], 'decoded size');
      const dims = [1, 3, input.height, input.width];

      const started = Date.now();
      const ours = (await model.run({ input0: { data: input.data, dims } })) as unknown as Record<keyof Outputs, { data: Float32Array; dims: number[] }>;
      const oursMs = Date.now() - started;
      const started2 = Date.now();
      const theirs = await session.run({ input0: new ort.Tensor('float32', input.data, dims) });
      const theirsMs = Date.now() - started2;
      t.comment(`${image.file}: facesight ${oursMs} ms, onnxruntime ${theirsMs} ms`);

      const anchors = priors(input.height, input.width).length / 4;
      for (const name of ['loc', 'conf', 'landms'] as const) {
        const a = ours[name];
        const b = theirs[name].data as Float32Array;
        t.same(a.dims, theirs[name].dims, `${name}: dims equal`);
        t.equal(a.dims[1], anchors, `${name}: one row per prior`);
        let lo = Infinity;
        let hi = -Infinity;
        let maxDiff = 0;
        for (let i = 0; i < b.length; i++) {
          lo = Math.min(lo, b[i]);
          hi = Math.max(hi, b[i]);
          maxDiff = Math.max(maxDiff, Math.abs(a.data[i] - b[i]));
        }
        const relative = maxDiff / (hi - lo);
        t.ok(relative <= MAX_RAW_REL_DIFF, `${name}: max |facesight - onnxruntime| ${maxDiff.toExponential(2)} = ${relative.toExponential(2)} of the range [${lo.toFixed(3)}, ${hi.toFixed(3)}] <= ${MAX_RAW_REL_DIFF}`);
      }

      const engines: [string, Outputs][] = [
        ['facesight', { loc: ours.loc.data, conf: ours.conf.data, landms: ours.landms.data }],
        ['onnxruntime', { loc: theirs.loc.data as Float32Array, conf: theirs.conf.data as Float32Array, landms: theirs.landms.data as Float32Array }],
      ];
      for (const [engine, out] of engines) {
        const found = postProcess(out.loc, out.conf, out.landms, input.height, input.width);
        compareWithReference(t, found, image.faces, `${image.file} (${engine})`);
      }
    });
  }
});

// face-api converters (issue #3): @vladmandic/face-api's TensorFlow.js weights → ONNX, checked
// against the original networks run by @tensorflow/tfjs (CPU backend; test/helpers/faceapi-oracle.ts):
//   - invalid weights (truncated or oversized shard, missing shard, malformed manifest, a manifest
//     naming a missing / unexpected tensor, a wrong shape) are FaceError E_MODEL with clear messages;
//   - the weights reader equals tf.io.decodeWeights bit for bit, on the three shipped manifests and on a
//     synthetic one with every storage type (uint8 / uint16 / float16 quantised, float32, int32) and
//     tensors split across shards;
//   - the shared tfjs layers (TensorFlow 'same' / 'valid' padding on odd and even sizes, strides 1 and
//     2, even kernels, depthwise with a multiplier, separable, pools, batchNorm, relu6, zero padding,
//     NHWC flatten + dense) equal the tfjs ops, on onnxruntime and on facesight's engine;
//   - the converted recognition net and landmark net equal face-api's computeFaceDescriptor /
//     detectLandmarks on real photo crops (faces and non-faces), on both runtimes, within the issue's
//     tolerances (descriptor cosine ≥ 0.9999; landmarks within 0.5 px at the 112 × 112 input);
//   - the model cache: build once, verified reads, damaged files rebuilt, atomic names, fallbacks.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import * as ort from 'onnxruntime-node';
import { FaceError } from '../lib/errors';
import { loadModel, type Model } from '../lib/engine';
import { readTfjsWeights, tfjsWeightsDigest } from '../lib/convert/faceapi-weights';
import {
  cachedFaceApiModel,
  convertFaceApiLandmarks68,
  convertFaceApiRecognition,
  faceApiCacheKey,
  faceApiModelDir,
} from '../lib/convert/faceapi';
import { cachedModel, cacheDir } from '../lib/models/cache';
import { FACEAPI_MEAN_RGB, faceApiRecognitionKeys } from '../lib/graphs/faceapi-recognition';
import { faceApiLandmarks68Keys } from '../lib/graphs/faceapi-landmarks';
import { TfjsLayerBuilder, type FeatureMap } from '../lib/graphs/tfjs-layers';
import type { WeightTensor } from '../lib/graphs/layers';
import { SeededRandom } from '../lib/onnx/random';
import { dataPath } from './helpers/data';
import { expectRejects } from './helpers/assertions';
import { faceApi, loadNet, tfjsDecode, type Tf } from './helpers/faceapi-oracle';

// Tolerances (the issue's).
const MIN_COSINE = 0.9999;
const MAX_LANDMARK_PX = 0.5;
/** Shared layers vs the tfjs op, per element: fp32 both, differing in summation order only. */
const LAYER_ATOL = 1e-5;
const LAYER_RTOL = 1e-5;
const THREADS = 2;

const MODEL_DIR = faceApiModelDir();
const RECOGNITION_MANIFEST = path.join(MODEL_DIR, 'face_recognition_model-weights_manifest.json');
const LANDMARKS_MANIFEST = path.join(MODEL_DIR, 'face_landmark_68_model-weights_manifest.json');
const SSD_MANIFEST = path.join(MODEL_DIR, 'ssd_mobilenetv1_model-weights_manifest.json');


// ---------------------------------------------------------------------------------------------
// Helpers

const rejectsModel = (t: Tap.Test, promise: Promise<unknown>, message: RegExp, what: string) => expectRejects(t, promise, 'E_MODEL', message, what);

function tempDir(t: Tap.Test, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface ManifestGroup {
  paths: string[];
  weights: { name: string; shape: number[]; dtype: string; quantization?: Record<string, unknown> }[];
}

/** A copy of face-api's landmark manifest and shard in a fresh folder, edited by the callbacks. */
function landmarkCopy(
  t: Tap.Test,
  edit: { manifest?: (m: ManifestGroup[]) => unknown; shard?: (b: Buffer) => Buffer; dropShard?: boolean } = {},
): string {
  const dir = tempDir(t, 'facesight-faceapi-');
  const manifest = JSON.parse(fs.readFileSync(LANDMARKS_MANIFEST, 'utf8')) as ManifestGroup[];
  const shardName = manifest[0]!.paths[0]!;
  const shard = fs.readFileSync(path.join(MODEL_DIR, shardName));
  const edited = edit.manifest ? edit.manifest(manifest) : manifest;
  fs.writeFileSync(path.join(dir, 'face_landmark_68_model-weights_manifest.json'), typeof edited === 'string' ? edited : JSON.stringify(edited ?? manifest));
  if (!edit.dropShard) fs.writeFileSync(path.join(dir, shardName), edit.shard ? edit.shard(shard) : shard);
  return dir;
}

function storageBytes(w: ManifestGroup['weights'][number]): number {
  const q = (w.quantization?.dtype as string | undefined) ?? w.dtype;
  return w.shape.reduce((a, b) => a * b, 1) * ({ uint8: 1, uint16: 2, float16: 2, float32: 4, int32: 4 } as Record<string, number>)[q]!;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

/** NHWC → NCHW for a batch. */
function toNchw(x: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++)
        for (let ch = 0; ch < c; ch++) out[((b * c + ch) * h + y) * w + xx] = x[((b * h + y) * w + xx) * c + ch]!;
  return out;
}

function toNhwc(x: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < w; xx++) out[((b * h + y) * w + xx) * c + ch] = x[((b * c + ch) * h + y) * w + xx]!;
  return out;
}

async function runOrt(bytes: Uint8Array, feeds: Record<string, { data: Float32Array; dims: number[] }>): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: THREADS });
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, v] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor('float32', v.data, v.dims);
  const out = await session.run(ortFeeds);
  await session.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

async function runEngine(model: Model, feeds: Record<string, { data: Float32Array; dims: number[] }>): Promise<Record<string, Float32Array>> {
  const out = await model.run(feeds);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data]));
}

// ---------------------------------------------------------------------------------------------
// Photo crops: square crops around faces that face-api's own SSD-MobileNetV1 found (minConfidence
// 0.5; box x, y, width, height in image pixels), and non-face crops.

interface Crop {
  file: string;
  label: string;
  /** [x, y, width, height]; the crop is the square of side max(width, height) centred on it. */
  box: [number, number, number, number];
  face: boolean;
}

const CROPS: Crop[] = [
  { file: 'grace_hopper_512x512.jpg', label: 'grace_hopper', box: [176, 103, 172, 205], face: true },
  { file: 'skimage_astronaut.png', label: 'astronaut', box: [181, 73, 83, 102], face: true },
  { file: 'skimage_camera.png', label: 'cameraman (grey)', box: [202, 119, 53, 80], face: true },
  { file: 'human_person-vlado5.jpg', label: 'vlado5', box: [429, 46, 85, 125], face: true },
  { file: 'gallery_match/gallery_obama_1.jpg', label: 'obama_1', box: [382, 274, 351, 460], face: true },
  { file: 'gallery_match/query_obama.jpg', label: 'query_obama', box: [126, 39, 133, 166], face: true },
  { file: 'gallery_match/gallery_zhangxueyou_1.jpg', label: 'zhangxueyou_1', box: [101, 111, 99, 125], face: true },
  { file: 'opencv_messi5.jpg', label: 'messi (small)', box: [225, 83, 32, 48], face: true },
  { file: 'noface_skimage_coffee.png', label: 'coffee (no face)', box: [150, 50, 300, 300], face: false },
  { file: 'noface_skimage_chelsea_cat.png', label: 'cat (no face)', box: [110, 20, 240, 240], face: false },
];

/** The crop resized to size × size RGB (raw bytes, HWC). */
async function cropPixels(file: string, box: Crop['box'], size: number): Promise<Uint8Array> {
  const meta = await sharp(file).metadata();
  const [bx, by, bw, bh] = box;
  const side = Math.min(Math.round(Math.max(bw, bh)), meta.width!, meta.height!);
  const left = Math.min(Math.max(0, Math.round(bx + bw / 2 - side / 2)), meta.width! - side);
  const top = Math.min(Math.max(0, Math.round(by + bh / 2 - side / 2)), meta.height! - side);
  const { data: pixels, info } = await sharp(file)
    .removeAlpha()
    .toColourspace('srgb')
    .extract({ left, top, width: side, height: side })
    .resize(size, size, { fit: 'fill' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== size || info.height !== size) throw new Error(`${file}: ${info.width}x${info.height}x${info.channels}`);
  return new Uint8Array(pixels);
}

/** face-api's normalisation, (pixel − mean) / 255 in float32 as tfjs computes it, NCHW. */
function normalise(pixels: Uint8Array, size: number): Float32Array {
  const mean = FACEAPI_MEAN_RGB.map((m) => Math.fround(m));
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) for (let i = 0; i < plane; i++) out[c * plane + i] = Math.fround(pixels[i * 3 + c]! - mean[c]!) / 255;
  return out;
}

async function loadCrops(t: Tap.Test, size: number): Promise<{ crop: Crop; pixels: Uint8Array }[]> {
  const out: { crop: Crop; pixels: Uint8Array }[] = [];
  for (const crop of CROPS) {
    const file = dataPath(t, `photos/${crop.file}`);
    if (file === undefined) return [];
    out.push({ crop, pixels: await cropPixels(file, crop.box, size) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Invalid input

t.test('invalid weights are E_MODEL with clear messages', async (t) => {
  const truncated = landmarkCopy(t, { shard: (b) => b.subarray(0, b.length - 10) });
  await rejectsModel(t, readTfjsWeights(path.join(truncated, 'face_landmark_68_model-weights_manifest.json')), /^Truncated weights: tensor 'fc\/bias' \[136\] \(uint8, 136 bytes at offset \d+\) runs past the end of 'face_landmark_68_model\.bin'; the manifest .* needs 356840 bytes for this group but its shards 'face_landmark_68_model\.bin' \(356830 bytes\) hold 356830$/, 'truncated shard (reader)');
  await rejectsModel(t, convertFaceApiLandmarks68(truncated), /^Truncated weights: tensor 'fc\/bias'/, 'truncated shard (converter)');

  const long = landmarkCopy(t, { shard: (b) => Buffer.concat([b, Buffer.alloc(4)]) });
  await rejectsModel(t, convertFaceApiLandmarks68(long), /^The weight shards 'face_landmark_68_model\.bin' \(356844 bytes\) hold 4 bytes more than the 356840 that the manifest .* describes/, 'shard with extra bytes');

  await rejectsModel(t, convertFaceApiLandmarks68(landmarkCopy(t, { dropShard: true })), /^Cannot read the weight shard 'face_landmark_68_model\.bin' named by the manifest '.*face_landmark_68_model-weights_manifest\.json': ENOENT/, 'missing shard');
  await rejectsModel(t, convertFaceApiLandmarks68(path.join(os.tmpdir(), 'facesight-no-such-folder')), /^Cannot read the weights manifest '.*facesight-no-such-folder\/face_landmark_68_model-weights_manifest\.json': ENOENT/, 'missing manifest');

  // A manifest naming a tensor the network does not have (and so lacking one it needs).
  const renamed = landmarkCopy(t, { manifest: (m) => (m[0]!.weights.find((w) => w.name === 'fc/bias')!.name = 'fc/offset', m) });
  await rejectsModel(t, convertFaceApiLandmarks68(renamed), /^Expected the 49 weights of face-api FaceLandmark68Net \(face_landmark_68_model\) in '.*', but it is missing the weight 'fc\/bias' \[136\] and has the unexpected tensor 'fc\/offset' \[136\] \(a different architecture or renamed keys\?\)$/, 'renamed tensor');

  // A manifest (and shard) without a tensor.
  const dropped = landmarkCopy(t, {
    manifest: (m) => ((m[0]!.weights = m[0]!.weights.filter((w) => w.name !== 'fc/bias')), m),
    shard: (b) => b.subarray(0, b.length - 136),
  });
  await rejectsModel(t, convertFaceApiLandmarks68(dropped), /^Expected the 49 weights of face-api FaceLandmark68Net \(face_landmark_68_model\) in '.*', but it is missing the weight 'fc\/bias' \[136\]$/, 'missing tensor');

  // Same byte count, wrong shape.
  const reshaped = landmarkCopy(t, { manifest: (m) => ((m[0]!.weights.find((w) => w.name === 'fc/weights')!.shape = [136, 256]), m) });
  await rejectsModel(t, convertFaceApiLandmarks68(reshaped), /^Expected dims \[256, 136\] for weight 'fc\/weights' of '.*' but received \[136, 256\]$/, 'wrong shape');

  // Another model's weights under this name.
  const other = tempDir(t, 'facesight-faceapi-');
  fs.copyFileSync(RECOGNITION_MANIFEST, path.join(other, 'face_landmark_68_model-weights_manifest.json'));
  fs.copyFileSync(path.join(MODEL_DIR, 'face_recognition_model.bin'), path.join(other, 'face_recognition_model.bin'));
  await rejectsModel(t, convertFaceApiLandmarks68(other), /^Expected the 49 weights of face-api FaceLandmark68Net .* \(these are the weights of face-api FaceRecognitionNet \(face_recognition_model\)\)$/, "another model's manifest");

  // Malformed manifests.
  const bad: [string, (m: ManifestGroup[]) => unknown, RegExp][] = [
    ['not JSON', () => '{"paths": [', /^The weights manifest '.*' is not valid JSON: /],
    ['not an array', () => ({ paths: [] }), /^Expected an array of weight groups for the manifest in the weights manifest '.*' but received an object \(Object\)$/],
    ['no groups', () => [], /^The weights manifest '.*' lists no weight groups$/],
    ['no paths', (m) => (delete (m[0] as Partial<ManifestGroup>).paths, m), /^Expected a non-empty array of shard file names for group 0 paths in the weights manifest '.*' but received undefined$/],
    ['path outside the folder', (m) => ((m[0]!.paths = ['../face_landmark_68_model.bin']), m), /^Expected a relative '\/'-separated path inside the manifest's folder for group 0 paths\[0\] .* but received "\.\.\/face_landmark_68_model\.bin"$/],
    ['shape not integers', (m) => ((m[0]!.weights[3]!.shape = [1, 1.5]), m), /^Expected an array of non-negative integers for the shape of tensor 'dense0\/conv1\/pointwise_filter' in the weights manifest '.*' but received an array of length 2$/],
    ['string dtype', (m) => ((m[0]!.weights[0]!.dtype = 'string'), m), /^Unsupported dtype "string" of tensor 'dense0\/conv0\/filters' in the weights manifest '.*': only float32 and int32 tensors are supported$/],
    ['unknown quantization', (m) => ((m[0]!.weights[0]!.quantization!.dtype = 'int4'), m), /^Expected 'uint8', 'uint16' or 'float16' for the quantization dtype of tensor 'dense0\/conv0\/filters' .* but received "int4"$/],
    ['uint8 without scale', (m) => (delete m[0]!.weights[1]!.quantization!.scale, m), /^Expected a finite number for the quantization scale of tensor 'dense0\/conv0\/bias' .* but received undefined$/],
    ['float16 int32', (m) => ((m[0]!.weights[1]!.dtype = 'int32'), (m[0]!.weights[1]!.quantization = { dtype: 'float16' }), m), /^The tensor 'dense0\/conv0\/bias' in the weights manifest '.*' is quantised as float16, which applies to float32 tensors only, but its dtype is int32$/],
    ['duplicate name', (m) => ((m[0]!.weights[2]!.name = m[0]!.weights[1]!.name), m), /^The weights manifest '.*' names the tensor 'dense0\/conv0\/bias' twice$/],
  ];
  for (const [what, edit, message] of bad) await rejectsModel(t, convertFaceApiLandmarks68(landmarkCopy(t, { manifest: edit })), message, what);

  // An int32 tensor where the network needs a float.
  const ints = landmarkCopy(t, { manifest: (m) => ((m[0]!.weights.find((w) => w.name === 'fc/bias')!.dtype = 'int32'), m) });
  await rejectsModel(t, convertFaceApiLandmarks68(ints), /^Expected a floating-point tensor .* for weight 'fc\/bias' of '.*' but received int32$/, 'int32 weight');

  // Cache arguments.
  for (const [args, message] of [
    [['../x', async () => new Uint8Array(1), 'k'], /^Expected letters, digits.* for cachedModel\(name\) but received "\.\.\/x"$/],
    [['m', async () => new Uint8Array(1), 'a/b'], /^Expected letters, digits.* for cachedModel\(key\) but received "a\/b"$/],
    [['m', 'not a function', 'k'], /^Expected a function returning a Promise of bytes for cachedModel\(build\) but received "not a function"$/],
  ] as [Parameters<typeof cachedModel>, RegExp][]) {
    await t.rejects(cachedModel(...args), { code: 'E_INPUT', message }, `cachedModel(${JSON.stringify(args[0])}, ..., ${JSON.stringify(args[2])})`);
  }
});

// ---------------------------------------------------------------------------------------------
// The weights reader

t.test('the reader equals tf.io.decodeWeights on the shipped manifests', async (t) => {
  const { tf } = await faceApi();
  for (const manifest of [RECOGNITION_MANIFEST, LANDMARKS_MANIFEST, SSD_MANIFEST]) {
    const ours = await readTfjsWeights(manifest);
    const theirs = tfjsDecode(tf, manifest);
    t.same([...ours.tensors.keys()], Object.keys(theirs), `${path.basename(manifest)}: the same tensors, in order`);
    let mismatches = 0;
    for (const [name, tensor] of ours.tensors) {
      const ref = theirs[name]!;
      const values = ref.dataSync();
      if (tensor.dtype !== ref.dtype || tensor.dims.join() !== ref.shape.join() || !Float32Array.from(values).every((v, i) => Object.is(v, tensor.data[i]))) mismatches++;
    }
    t.equal(mismatches, 0, `${path.basename(manifest)}: ${ours.tensors.size} tensors bit-identical (dtype, shape, values)`);
    t.match(ours.sha256, /^[0-9a-f]{64}$/, 'sha256 in hex');
    t.equal(await tfjsWeightsDigest(manifest), ours.sha256, 'tfjsWeightsDigest gives the same digest');
  }
});

t.test('the reader on every storage type, shards split mid-tensor', async (t) => {
  const { tf } = await faceApi();
  const dir = tempDir(t, 'facesight-tfjs-');
  const rng = new SeededRandom(3);
  const half = new Uint16Array([0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xbc00, 0x7bff, 0x7c00, 0xfc00, 0x3555, 0xc248]);
  const u8 = Uint8Array.from({ length: 24 }, (_, i) => (i * 37) % 256);
  const u16 = Uint16Array.from({ length: 10 }, (_, i) => (i * 7919) % 65536);
  const f32 = rng.normalArray(6, 0, 3);
  const i32 = Int32Array.from([-7, 0, 2147483647, -2147483648]);
  const i32q = Uint8Array.from([0, 1, 2, 255]);
  const groups = [
    {
      weights: [
        { name: 'a/u8', shape: [2, 3, 4], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.0123, min: -1.5 } },
        { name: 'a/f16', shape: [12], dtype: 'float32', quantization: { dtype: 'float16' } },
        { name: 'a/u16', shape: [5, 2], dtype: 'float32', quantization: { dtype: 'uint16', scale: 1.7e-5, min: 0.25 } },
        { name: 'a/f32', shape: [2, 3], dtype: 'float32' },
      ],
      bytes: [u8, half, u16, f32],
      cuts: [5, 31, 50], // shard boundaries inside tensors
    },
    {
      weights: [
        { name: 'b/i32', shape: [4], dtype: 'int32' },
        { name: 'b/i32q', shape: [2, 2], dtype: 'int32', quantization: { dtype: 'uint8', scale: 1.5, min: 24 } },
        { name: 'b/empty', shape: [0, 3], dtype: 'float32' },
        { name: 'b/scalar', shape: [], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.5, min: 0.25 } },
      ],
      bytes: [i32, i32q, new Uint8Array(0), Uint8Array.from([9])],
      cuts: [],
    },
  ];
  const manifest = groups.map((g, gi) => {
    const all = Buffer.concat(g.bytes.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
    const bounds = [0, ...g.cuts, all.length];
    const paths = bounds.slice(1).map((end, i) => {
      const name = `group${gi + 1}-shard${i + 1}of${bounds.length - 1}.bin`;
      fs.writeFileSync(path.join(dir, name), all.subarray(bounds[i], end));
      return name;
    });
    return { paths, weights: g.weights };
  });
  const file = path.join(dir, 'synthetic-weights_manifest.json');
  fs.writeFileSync(file, JSON.stringify(manifest));

  const ours = await readTfjsWeights(file);
  const theirs = tfjsDecode(tf, file);
  for (const [name, ref] of Object.entries(theirs)) {
    const mine = ours.tensors.get(name)!;
    const values = Array.from(ref.dataSync());
    t.same(mine.dims, ref.shape, `${name}: shape`);
    t.equal(mine.dtype, ref.dtype, `${name}: dtype`);
    t.ok(values.length === mine.data.length && values.every((v, i) => Object.is(Math.fround(v), mine.data[i])), `${name}: values equal tfjs's (${values.slice(0, 4).join(', ')}${values.length > 4 ? ', ...' : ''})`);
  }
  t.same(Array.from(ours.tensors.get('a/f16')!.data.slice(0, 6)), [0, -0, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 1], 'float16: zero, -0, subnormals, normals');
  t.same(Array.from(ours.tensors.get('b/i32q')!.data), [24, 26, 27, 407], 'int32 uint8-quantised: Math.round(q·scale + min)');
  t.same(ours.files.map((f) => path.basename(f)), ['synthetic-weights_manifest.json', ...manifest.flatMap((g) => g.paths)], 'files read');

  // The digest covers every shard.
  const before = ours.sha256;
  const shard = path.join(dir, manifest[0]!.paths[1]!);
  const bytes = fs.readFileSync(shard);
  bytes[0] ^= 1;
  fs.writeFileSync(shard, bytes);
  t.not(await tfjsWeightsDigest(file), before, 'one changed shard byte changes the digest');
});

// ---------------------------------------------------------------------------------------------
// The shared tfjs layers vs the tfjs ops

interface LayerCase {
  name: string;
  /** Input [N, H, W, C]. */
  input: [number, number, number, number];
  /** Input values are uniform in ±this (default 1). */
  range?: number;
  onnx: (T: TfjsLayerBuilder, x: FeatureMap) => FeatureMap | { name: string; size: number };
  tf: (tf: Tf, x: unknown, w: (key: string) => unknown) => unknown;
}

const LAYER_CASES: LayerCase[] = [
  {
    name: "conv2d 3x3 stride 2 'same' on 9x8 (pads [1,1] rows, [0,1] columns) + bias",
    input: [2, 9, 8, 3],
    onnx: (T, x) => T.conv2d(x, 'c', { filters: 'f', bias: 'b', kernel: 3, outChannels: 5, stride: 2, padding: 'same' }),
    tf: (tf, x, w) => tf.add(tf.conv2d(x, w('f'), 2, 'same'), w('b')),
  },
  {
    name: "conv2d 4x4 stride 2 'same' on 7x8 (even kernel: pads [1,2] rows, [1,1] columns)",
    input: [1, 7, 8, 2],
    onnx: (T, x) => T.conv2d(x, 'c', { filters: 'f', kernel: 4, outChannels: 3, stride: 2, padding: 'same' }),
    tf: (tf, x, w) => tf.conv2d(x, w('f'), 2, 'same'),
  },
  {
    name: "conv2d 7x7 stride 2 'valid' on 16x15",
    input: [1, 16, 15, 3],
    onnx: (T, x) => T.conv2d(x, 'c', { filters: 'f', kernel: 7, outChannels: 4, stride: 2, padding: 'valid' }),
    tf: (tf, x, w) => tf.conv2d(x, w('f'), 2, 'valid'),
  },
  {
    name: "conv2d 3x3 'same' + bias + scale layer (folded)",
    input: [2, 6, 5, 4],
    onnx: (T, x) => T.conv2d(x, 'c', { filters: 'f', bias: 'b', scale: { weights: 'sw', biases: 'sb' }, kernel: 3, outChannels: 4, stride: 1, padding: 'same' }),
    tf: (tf, x, w) => tf.add(tf.mul(tf.add(tf.conv2d(x, w('f'), 1, 'same'), w('b')), w('sw')), w('sb')),
  },
  {
    name: "depthwiseConv2d 3x3 stride 2 'same', multiplier 2, on 7x6",
    input: [2, 7, 6, 3],
    onnx: (T, x) => T.conv2d(x, 'd', { filters: 'f', kernel: 3, outChannels: 2, stride: 2, padding: 'same', depthwise: true }),
    tf: (tf, x, w) => tf.depthwiseConv2d(x, w('f'), 2, 'same'),
  },
  {
    name: "separableConv2d 3x3 stride 2 'same' on 6x7 + bias",
    input: [2, 6, 7, 4],
    onnx: (T, x) => T.separableConv2d(x, 's', { depthwise: 'dw', pointwise: 'pw', bias: 'b', kernel: 3, outChannels: 6, stride: 2, padding: 'same' }),
    tf: (tf, x, w) => tf.add(tf.separableConv2d(x, w('dw'), w('pw'), 2, 'same'), w('b')),
  },
  {
    name: "maxPool 3x3 stride 2 'same' on 7x6",
    input: [2, 7, 6, 3],
    onnx: (T, x) => T.pool(x, 'p', 'max', 3, 2, 'same'),
    tf: (tf, x) => tf.maxPool(x, 3, 2, 'same'),
  },
  {
    name: "avgPool 3x3 stride 2 'same' on 7x6 (padding not counted)",
    input: [2, 7, 6, 3],
    onnx: (T, x) => T.pool(x, 'p', 'avg', 3, 2, 'same'),
    tf: (tf, x) => tf.avgPool(x, 3, 2, 'same'),
  },
  {
    name: "avgPool 2x2 stride 2 'valid' on 7x7",
    input: [1, 7, 7, 2],
    onnx: (T, x) => T.pool(x, 'p', 'avg', 2, 2, 'valid'),
    tf: (tf, x) => tf.avgPool(x, 2, 2, 'valid'),
  },
  {
    name: 'batchNorm (epsilon 0.001) + relu6',
    input: [2, 4, 3, 5],
    range: 8,
    onnx: (T, x) => T.relu6(T.batchNorm(x, 'bn', { mean: 'm', variance: 'v', gamma: 'g', beta: 'b', epsilon: 0.001 }), 'r6'),
    tf: (tf, x, w) => tf.clipByValue(tf.batchNorm(x, w('m'), w('v'), w('b'), w('g'), 0.001), 0, 6),
  },
  {
    name: 'zeros appended: channels, then a row and a column',
    input: [2, 3, 4, 2],
    onnx: (T, x) => T.padEnd(T.padEnd(x, 'pc', { channels: 2 }), 'phw', { height: 1, width: 1 }),
    tf: (tf, x) => {
      const c = tf.concat([x, tf.zeros([2, 3, 4, 2])], 3);
      const h = tf.concat([c, tf.zeros([2, 1, 4, 4])], 1);
      return tf.concat([h, tf.zeros([2, 4, 1, 4])], 2);
    },
  },
  {
    name: 'flatten (NHWC order) + dense with bias',
    input: [2, 2, 3, 4],
    onnx: (T, x) => T.dense(T.flatten(x, 'flat'), 'fc', { weights: 'w', bias: 'b', outSize: 5 }),
    tf: (tf, x, w) => tf.add(tf.matMul(tf.reshape(x, [2, -1]), w('w')), w('b')),
  },
];

t.test('tfjs layers as ONNX equal the tfjs ops (onnxruntime and engine)', async (t) => {
  const { tf } = await faceApi();
  for (const [i, c] of LAYER_CASES.entries()) {
    const [n, h, w, ch] = c.input;
    const weights = new Map<string, WeightTensor>();
    const source = (key: string, dims: readonly number[]): WeightTensor => {
      let v = weights.get(key);
      if (!v) {
        const count = dims.reduce((a, b) => a * b, 1);
        const rng = new SeededRandom(100 * i + weights.size + 1);
        // Positive variances; everything else O(1).
        const values = key === 'v' ? rng.uniformArray(count, 0.5, 1.5) : rng.uniformArray(count, -1, 1);
        v = { data: values, dims: [...dims] };
        weights.set(key, v);
      }
      return v;
    };
    const T = new TfjsLayerBuilder('case', { weights: source });
    const x = T.input('x', ch, h, w);
    const y = c.onnx(T, x);
    T.graph.output(y.name);
    const bytes = T.graph.toBytes();

    const nhwc = new SeededRandom(7 + i).uniformArray(n * h * w * ch, -(c.range ?? 1), c.range ?? 1);
    const feeds = { x: { data: toNchw(nhwc, n, h, w, ch), dims: [n, ch, h, w] } };
    const ref = tf.tidy(() => {
      const out = c.tf(tf, tf.tensor4d(nhwc, [n, h, w, ch]), (key: string) => tf.tensor(weights.get(key)!.data, weights.get(key)!.dims)) as { shape: number[]; dataSync(): Float32Array };
      return { shape: out.shape, data: Float32Array.from(out.dataSync()) };
    }) as { shape: number[]; data: Float32Array };

    const toRef = (v: Float32Array): Float32Array => ('channels' in y ? toNhwc(v, n, y.channels, y.height, y.width) : v);
    const expectedShape = 'channels' in y ? [n, y.height, y.width, y.channels] : [n, y.size];
    t.same(ref.shape, expectedShape, `${c.name}: tracked shape equals tfjs's [${ref.shape.join(', ')}]`);
    const model = await loadModel(bytes, { threads: THREADS });
    for (const [runtime, out] of [
      ['onnxruntime', (await runOrt(bytes, feeds))[y.name]!],
      ['engine', (await runEngine(model, feeds))[y.name]!],
    ] as const) {
      const got = toRef(out);
      let worst = 0;
      for (let k = 0; k < got.length; k++) worst = Math.max(worst, Math.abs(got[k]! - ref.data[k]!) - LAYER_RTOL * Math.abs(ref.data[k]!));
      t.ok(got.length === ref.data.length && worst <= LAYER_ATOL, `${c.name}: ${runtime} equals tfjs (max |diff| ${maxAbs(got, ref.data).toExponential(2)})`);
    }
    model.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// The converted networks vs face-api

t.test('FaceRecognitionNet: ONNX descriptors equal face-api on photo crops', async (t) => {
  const api = await faceApi();
  const tf = api.tf as Tf;
  const crops = await loadCrops(t, 150);
  if (crops.length === 0) return;
  t.same(faceApiRecognitionKeys().length, 117, 'the graph consumes all 117 tensors of the manifest');

  const net = loadNet(api, new api.FaceRecognitionNet(), RECOGNITION_MANIFEST);
  const expected: Float32Array[] = [];
  for (const { pixels } of crops) {
    const x = tf.tensor4d(pixels, [1, 150, 150, 3], 'int32');
    expected.push(Float32Array.from((await net.computeFaceDescriptor(x)) as Float32Array));
    x.dispose();
  }
  net.dispose();

  const bytes = await convertFaceApiRecognition();
  const n = crops.length;
  const batch = new Float32Array(n * 3 * 150 * 150);
  crops.forEach(({ pixels }, i) => batch.set(normalise(pixels, 150), i * 3 * 150 * 150));
  const feeds = { input: { data: batch, dims: [n, 3, 150, 150] } };
  const model = await loadModel(bytes, { threads: THREADS });
  const results = { onnxruntime: (await runOrt(bytes, feeds)).embedding!, engine: (await runEngine(model, feeds)).embedding! };
  model.dispose();

  for (const [runtime, out] of Object.entries(results)) {
    t.equal(out.length, n * 128, `${runtime}: [${n}, 128]`);
    crops.forEach(({ crop }, i) => {
      const got = out.subarray(i * 128, (i + 1) * 128);
      const cos = cosine(got, expected[i]!);
      t.ok(cos >= MIN_COSINE, `${runtime} ${crop.label}: cosine ${cos.toFixed(9)} ≥ ${MIN_COSINE}, max |diff| ${maxAbs(got, expected[i]!).toExponential(2)} (|descriptor| ${Math.hypot(...expected[i]!).toFixed(3)})`);
    });
  }
  // Sanity of the crops: the same person is closer than different people (face-api's 0.6 rule).
  const byLabel = new Map(crops.map(({ crop }, i) => [crop.label, expected[i]!]));
  const dist = (a: string, b: string) => Math.hypot(...byLabel.get(a)!.map((v, k) => v - byLabel.get(b)![k]!));
  t.ok(dist('obama_1', 'query_obama') < 0.6, `Obama vs Obama: distance ${dist('obama_1', 'query_obama').toFixed(3)} < 0.6`);
  t.ok(dist('obama_1', 'zhangxueyou_1') > 0.6, `Obama vs Jacky Cheung: distance ${dist('obama_1', 'zhangxueyou_1').toFixed(3)} > 0.6`);
});

t.test('FaceLandmark68Net: ONNX landmarks equal face-api on photo crops', async (t) => {
  const api = await faceApi();
  const tf = api.tf as Tf;
  const crops = await loadCrops(t, 112);
  if (crops.length === 0) return;
  t.same(faceApiLandmarks68Keys().length, 49, 'the graph consumes all 49 tensors of the manifest');

  const net = loadNet(api, new api.FaceLandmark68Net(), LANDMARKS_MANIFEST);
  const points: Float32Array[] = [];
  const raw: Float32Array[] = [];
  for (const { pixels } of crops) {
    const x = tf.tensor4d(pixels, [1, 112, 112, 3], 'int32');
    const landmarks = await net.detectLandmarks(x);
    points.push(Float32Array.from((landmarks.positions as { x: number; y: number }[]).flatMap((p) => [p.x, p.y])));
    const out = net.runNet(await api.toNetInput(x));
    raw.push(Float32Array.from(out.dataSync() as Float32Array));
    out.dispose();
    x.dispose();
  }
  net.dispose();

  const bytes = await convertFaceApiLandmarks68();
  const n = crops.length;
  const batch = new Float32Array(n * 3 * 112 * 112);
  crops.forEach(({ pixels }, i) => batch.set(normalise(pixels, 112), i * 3 * 112 * 112));
  const feeds = { input: { data: batch, dims: [n, 3, 112, 112] } };
  const model = await loadModel(bytes, { threads: THREADS });
  const results = { onnxruntime: (await runOrt(bytes, feeds)).landmarks!, engine: (await runEngine(model, feeds)).landmarks! };
  model.dispose();

  for (const [runtime, out] of Object.entries(results)) {
    t.equal(out.length, n * 136, `${runtime}: [${n}, 136]`);
    crops.forEach(({ crop }, i) => {
      const got = out.subarray(i * 136, (i + 1) * 136);
      const px = got.map((v) => v * 112);
      let worst = 0;
      for (let k = 0; k < 68; k++) worst = Math.max(worst, Math.hypot(px[2 * k]! - points[i]![2 * k]!, px[2 * k + 1]! - points[i]![2 * k + 1]!));
      t.ok(worst <= MAX_LANDMARK_PX, `${runtime} ${crop.label}: worst point ${worst.toExponential(2)} px ≤ ${MAX_LANDMARK_PX} px at 112×112; raw max |diff| ${maxAbs(got, raw[i]!).toExponential(2)}`);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// The cache

t.test('model cache', async (t) => {
  const dir = tempDir(t, 'facesight-cache-');
  let builds = 0;
  const payload = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31) % 251);
  const build = async () => {
    builds++;
    return payload;
  };
  const key = 'a'.repeat(64);

  const first = await cachedModel('demo', build, key, { dir });
  t.same(first, payload, 'first call: the built bytes');
  const files = fs.readdirSync(dir);
  t.equal(files.length, 1, 'one file, no temporary left behind');
  t.match(files[0], new RegExp(`^demo-${key}-[0-9a-f]{64}\\.onnx$`), 'named <name>-<key>-<sha256 of the bytes>.onnx');
  const second = await cachedModel('demo', build, key, { dir });
  t.same(second, payload, 'second call: the same bytes');
  t.equal(builds, 1, 'second call read the cache');

  const file = path.join(dir, files[0]!);
  const damaged = Buffer.from(payload);
  damaged[500] ^= 0xff;
  fs.writeFileSync(file, damaged);
  t.same(await cachedModel('demo', build, key, { dir }), payload, 'damaged file: rebuilt bytes returned');
  t.equal(builds, 2, 'damaged file: rebuilt, not used');
  t.same(new Uint8Array(fs.readFileSync(file)), payload, 'damaged file: replaced');
  fs.writeFileSync(file, payload.subarray(0, 10));
  t.same(await cachedModel('demo', build, key, { dir }), payload, 'truncated file: rebuilt');
  t.equal(builds, 3, 'truncated file: rebuilt, not used');

  await cachedModel('demo', build, 'b'.repeat(64), { dir });
  t.equal(builds, 4, 'another key: another build');
  await Promise.all([1, 2, 3].map(() => cachedModel('other', build, key, { dir })));
  t.equal(builds, 5, 'concurrent calls share one build');

  // An unusable folder: the bytes still come back, with a warning.
  const blocker = path.join(dir, 'a-file');
  fs.writeFileSync(blocker, '');
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  t.same(await cachedModel('demo', build, key, { dir: path.join(blocker, 'sub') }), payload, 'unwritable folder: the built bytes');
  await new Promise((resolve) => setImmediate(resolve));
  process.off('warning', onWarning);
  t.match(warnings.join('\n'), /could not store a converted model in the cache folder/, 'unwritable folder: a warning');

  t.equal(await cacheDir({ FACESIGHT_CACHE: path.join(dir, 'env') }), path.join(dir, 'env'), 'FACESIGHT_CACHE is the folder');
  t.ok(fs.statSync(path.join(dir, 'env')).isDirectory(), 'FACESIGHT_CACHE is created');
  const fallback = await cacheDir({});
  t.ok(fallback.endsWith(path.join('node_modules', '.cache', 'facesight')) || fallback === path.join(os.tmpdir(), 'facesight-cache'), `default folder: ${fallback}`);

  // face-api models through the cache: converted once, then read back identical.
  const modelCache = tempDir(t, 'facesight-cache-');
  const converted = await convertFaceApiLandmarks68();
  const viaCache = await cachedFaceApiModel('landmarks68', undefined, { dir: modelCache });
  t.same(Buffer.from(viaCache).equals(Buffer.from(converted)), true, 'cachedFaceApiModel: the converter output (conversion is deterministic)');
  const key68 = await faceApiCacheKey('landmarks68');
  t.match(fs.readdirSync(modelCache), [new RegExp(`^faceapi-landmarks68-${key68}-[0-9a-f]{64}\\.onnx$`)], 'stored under the weights key');
  t.not(key68, await faceApiCacheKey('recognition'), 'each model has its own key');
  const again = await cachedFaceApiModel('landmarks68', undefined, { dir: modelCache });
  t.ok(Buffer.from(again).equals(Buffer.from(converted)), 'read back from the cache');
  // Other weights (a copy with one byte changed) get another key.
  const changed = landmarkCopy(t, { shard: (b) => ((b[0] ^= 1), b) });
  t.not(await faceApiCacheKey('landmarks68', changed), key68, 'changed weights: another key');
});

// ONNX writer and graph builders, checked by running the written models on onnxruntime-node.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxGraphBuilder, TensorElementType, int64Array } from '../lib/onnx/builder';
import { ProtoWriter } from '../lib/onnx/protobuf-writer';
import { SeededRandom } from '../lib/onnx/random';
import { buildRetinaFaceMnet025, buildRetinaFaceMnet025Graph, retinaFaceKeys } from '../lib/graphs/retinaface';
import { buildFaceNetMobileNetV1, buildFaceNetMobileNetV1Graph, faceNetKeys } from '../lib/graphs/facenet';
import type { WeightTensor } from '../lib/graphs/layers';

const repoRoot = path.resolve(__dirname, '..');
const dataDir = process.env.FACESIGHT_DATA ?? path.resolve(repoRoot, '../shared/data');
const requireData = process.env.FACESIGHT_REQUIRE_DATA === '1';

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function floatTensor(rng: SeededRandom, dims: number[], low: number, high: number): ort.Tensor {
  const count = dims.reduce((a, b) => a * b, 1);
  return new ort.Tensor('float32', rng.uniformArray(count, low, high), dims);
}

function stats(values: Float32Array): { mean: number; std: number; finite: boolean } {
  let sum = 0;
  let sumSq = 0;
  let finite = true;
  for (const v of values) {
    if (!Number.isFinite(v)) finite = false;
    sum += v;
    sumSq += v * v;
  }
  const mean = sum / values.length;
  return { mean, std: Math.sqrt(Math.max(0, sumSq / values.length - mean * mean)), finite };
}

function anchorCount(height: number, width: number): number {
  return [8, 16, 32].reduce((n, s) => n + Math.ceil(height / s) * Math.ceil(width / s) * 2, 0);
}

t.test('invalid input', async (t) => {
  const g = new OnnxGraphBuilder();
  const x = g.input('x', [1, 'N']);
  t.throws(() => g.input('x', [1]), { name: 'RangeError', message: /already defined/ });
  t.throws(() => g.node('Relu', ['missing']), { name: 'RangeError', message: /Expected a defined value .* 'missing'/ });
  t.throws(() => g.node('Transpose', [x], { perm: [0, 1.5] }), { name: 'TypeError', message: /Expected integers/ });
  t.throws(() => g.initializer('w', new Float32Array(3), [2, 2]), { name: 'RangeError', message: /Expected 4 elements/ });
  t.throws(() => g.initializer('w', new Float64Array(4) as unknown as Float32Array, [4]), { name: 'TypeError' });
  t.throws(() => g.output('nope'), { name: 'RangeError' });
  t.throws(() => buildRetinaFaceMnet025Graph({ weights: new Map() }), { name: 'RangeError', message: /Expected a tensor for weight 'body.stage1.0.0.weight'/ });
  const wrongDims = (key: string, dims: readonly number[]): WeightTensor => ({ data: new Float32Array(dims.reduce((a, b) => a * b, 1)), dims: [...dims].reverse() });
  t.throws(() => buildRetinaFaceMnet025Graph({ weights: wrongDims }), { name: 'RangeError', message: /Expected dims \[8, 3, 3, 3\]/ });
});

t.test('protobuf wire format', async (t) => {
  // Examples from the protobuf encoding guide.
  t.equal(hex(new ProtoWriter().int(1, 150).finish()), '089601');
  t.equal(hex(new ProtoWriter().string(2, 'testing').finish()), '120774657374696e67');
  t.equal(hex(new ProtoWriter().packedInts(4, [3, 270, 86942]).finish()), '2206038e029ea705');
  t.equal(hex(new ProtoWriter().int(1, -1).finish()), '08ffffffffffffffffff01', 'negative int64 is ten bytes');
  t.equal(hex(new ProtoWriter().int(1, 2n ** 40n).finish()), '08808080808020');
  t.equal(hex(new ProtoWriter().float(2, 1).finish()), '150000803f');
  t.equal(hex(new ProtoWriter().packedFloats(7, [1, -2]).finish()), '3a080000803f000000c0');
  t.equal(hex(new ProtoWriter().message(3, new ProtoWriter().int(1, 1)).finish()), '1a020801');
});

t.test('writer: small models run on onnxruntime', async (t) => {
  const g = new OnnxGraphBuilder('tiny');
  const x = g.input('x', ['N', 3]);
  const i = g.input('i', [2], TensorElementType.INT64);
  const j = g.input('j', [2], TensorElementType.INT32);
  const bias = g.initializer('bias', new Float32Array([1, 2, 3]), [3]);
  const offset = g.initializer('offset', int64Array([-5, 2 ** 40]), [2]);
  const offset32 = g.initializer('offset32', new Int32Array([-7, 100000]), [2]);
  const [scale] = g.node('Constant', [], { value: { tensor: { data: new Float32Array([2, 3, 4]), dims: [1, 3] } } });
  const [sum] = g.node('Add', [x, bias]);
  const [leaky] = g.node('LeakyRelu', [sum!], { alpha: { f: 0.25 } });
  g.node('Mul', [leaky!, scale!], {}, { outputs: ['y'] });
  g.node('Add', [i, offset], {}, { outputs: ['i_out'] });
  g.node('Add', [j, offset32], {}, { outputs: ['j_out'] });
  // Clip with an omitted optional input (''), and a float attribute that is an integer value.
  g.node('Clip', [x, '', g.initializer('hi', new Float32Array([0.5]), [])], {}, { outputs: ['clipped'] });
  g.node('Elu', [x], { alpha: { f: 2 } }, { outputs: ['elu'] });
  g.node('Gather', [x, g.node('Constant', [], { value: { tensor: { data: int64Array([1]), dims: [] } } })[0]!], { axis: 1 }, { outputs: ['col1'] });
  for (const name of ['y', 'clipped', 'elu', 'col1']) g.output(name);
  g.output('i_out', [2], TensorElementType.INT64);
  g.output('j_out', undefined, TensorElementType.INT32);
  t.same(g.unusedInitializers(), []);

  const session = await ort.InferenceSession.create(g.toBytes());
  const feeds = {
    x: new ort.Tensor('float32', new Float32Array([1, -10, 0, -2, 4, 0.25]), [2, 3]),
    i: new ort.Tensor('int64', int64Array([1, 2]), [2]),
    j: new ort.Tensor('int32', new Int32Array([1, 2]), [2]),
  };
  const out = await session.run(feeds);
  t.same(out.y!.dims, [2, 3]);
  // y = leaky(x + [1,2,3], 0.25) * [2,3,4]
  t.same(Array.from(out.y!.data as Float32Array), [4, -6, 12, -0.5, 18, 13]);
  t.same(Array.from(out.i_out!.data as BigInt64Array), [-4n, 2n ** 40n + 2n]);
  t.same(Array.from(out.j_out!.data as Int32Array), [-6, 100002]);
  t.same(Array.from(out.clipped!.data as Float32Array), [0.5, -10, 0, -2, 0.5, 0.25]);
  t.ok(Math.abs((out.elu!.data as Float32Array)[1]! - 2 * (Math.exp(-10) - 1)) < 1e-6, 'float attribute {f: 2} is a FLOAT');
  t.same(Array.from(out.col1!.data as Float32Array), [-10, 4]);
});

t.test('seeded random', async (t) => {
  const a = new SeededRandom(42).normalArray(10000, 0, 1);
  const b = new SeededRandom(42).normalArray(10000, 0, 1);
  t.same(a, b, 'same seed, same numbers');
  const s = stats(a);
  t.ok(Math.abs(s.mean) < 0.05 && Math.abs(s.std - 1) < 0.05, `N(0,1): mean ${s.mean.toFixed(3)} std ${s.std.toFixed(3)}`);
  const u = new SeededRandom(7).uniformArray(10000, 2, 3);
  t.ok(u.every((v) => v >= 2 && v < 3), 'uniform in [low, high)');
});

t.test('RetinaFace mnet0.25 on onnxruntime', async (t) => {
  const graph = buildRetinaFaceMnet025Graph();
  t.same(graph.unusedInitializers(), [], 'every initializer is consumed');
  const session = await ort.InferenceSession.create(buildRetinaFaceMnet025());
  t.same(session.inputNames, ['input0']);
  t.same(session.outputNames, ['loc', 'conf', 'landms']);
  const rng = new SeededRandom(3);

  for (const [n, h, w] of [
    [1, 640, 640],
    [2, 97, 131],
  ] as const) {
    const input = floatTensor(rng, [n, 3, h, w], -128, 128); // BGR minus mean spans about that range
    const out = await session.run({ input0: input });
    const anchors = anchorCount(h, w);
    t.same(out.loc!.dims, [n, anchors, 4], `loc dims at ${n}x3x${h}x${w}`);
    t.same(out.conf!.dims, [n, anchors, 2], 'conf dims');
    t.same(out.landms!.dims, [n, anchors, 10], 'landms dims');

    const conf = out.conf!.data as Float32Array;
    let worstRowSum = 0;
    for (let r = 0; r < conf.length; r += 2) worstRowSum = Math.max(worstRowSum, Math.abs(conf[r]! + conf[r + 1]! - 1));
    t.ok(worstRowSum < 1e-5, `conf rows sum to 1 (worst error ${worstRowSum})`);
    for (const name of ['loc', 'conf', 'landms']) {
      const s = stats(out[name]!.data as Float32Array);
      t.ok(s.finite, `${name} finite`);
      if (name !== 'conf') t.ok(s.std > 0.1 && s.std < 1e4, `${name} neither vanishes nor explodes (std ${s.std.toFixed(3)})`);
    }

    if (n === 2) {
      // The second image alone must give the second batch row: batch is really dynamic.
      const perImage = 3 * h * w;
      const single = new ort.Tensor('float32', (input.data as Float32Array).slice(perImage), [1, 3, h, w]);
      const alone = await session.run({ input0: single });
      const batched = (out.loc!.data as Float32Array).subarray(anchors * 4);
      const aloneLoc = alone.loc!.data as Float32Array;
      let maxDiff = 0;
      for (let k = 0; k < aloneLoc.length; k++) maxDiff = Math.max(maxDiff, Math.abs(aloneLoc[k]! - batched[k]!));
      t.ok(maxDiff < 1e-3, `batch row 1 equals a batch of one (max diff ${maxDiff})`);
    }
  }
});

t.test('RetinaFace weights come by state_dict key', async (t) => {
  const keys = retinaFaceKeys();
  t.equal(new Set(keys.map((k) => k.key)).size, keys.length, 'keys are unique');
  t.equal(keys.length, 253, '300 checkpoint tensors minus 47 num_batches_tracked');
  t.equal(keys.reduce((n, k) => n + k.dims.reduce((a, b) => a * b, 1), 0), 433343 - 47, 'element count of the checkpoint');

  const names = new Set(buildRetinaFaceMnet025Graph().initializerNames());
  t.ok(keys.every((k) => names.has(k.key)), 'every key is an initializer');

  // Supplied weights win over the seed; without them the seed matters.
  const rng = new SeededRandom(11);
  const weights = new Map(keys.map((k) => [k.key, { data: rng.normalArray(k.dims.reduce((a, b) => a * b, 1), 0, 0.1), dims: k.dims }]));
  t.equal(hex(buildRetinaFaceMnet025({ weights, seed: 1 })), hex(buildRetinaFaceMnet025({ weights, seed: 2 })));
  t.not(hex(buildRetinaFaceMnet025({ seed: 1 })), hex(buildRetinaFaceMnet025({ seed: 2 })));

  const keysFile = path.join(dataDir, 'weights', 'retinaface_mnet025.keys.txt');
  if (!fs.existsSync(keysFile)) {
    if (requireData) t.fail(`FACESIGHT_REQUIRE_DATA=1 but ${keysFile} is missing`);
    else t.skip(`checkpoint key listing not found at ${keysFile} (set FACESIGHT_DATA to the shared data folder)`);
    return;
  }
  const expected = new Map<string, number[]>();
  for (const line of fs.readFileSync(keysFile, 'utf8').split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const [key, , shape] = line.split('\t');
    if (key === undefined || shape === undefined || key.endsWith('.num_batches_tracked')) continue;
    expected.set(key, JSON.parse(shape) as number[]);
  }
  t.equal(expected.size, 253, 'checkpoint listing parsed');
  t.same(new Map(keys.map((k) => [k.key, k.dims])), expected, 'graph keys and dims equal the checkpoint');
  t.same([...expected.keys()].filter((k) => !names.has(k)), [], 'every checkpoint key is an initializer name');
});

t.test('FaceNet MobileNetV1 on onnxruntime', async (t) => {
  const keys = faceNetKeys();
  t.equal(keys.length, 140, 'conv_bn + 13 conv_dw blocks + Bottleneck + last_bn');
  t.same(keys.find((k) => k.key === 'backbone.model.stage1.0.0.weight')?.dims, [32, 3, 3, 3]);
  t.same(keys.find((k) => k.key === 'backbone.model.stage2.5.3.weight')?.dims, [512, 512, 1, 1]);
  t.same(keys.find((k) => k.key === 'backbone.model.stage3.1.4.running_var')?.dims, [1024]);
  t.same(keys.find((k) => k.key === 'Bottleneck.weight')?.dims, [128, 1024]);
  t.same(keys.find((k) => k.key === 'last_bn.weight')?.dims, [128]);
  const graph = buildFaceNetMobileNetV1Graph();
  t.same(graph.unusedInitializers(), []);
  const names = new Set(graph.initializerNames());
  t.ok(keys.every((k) => names.has(k.key)), 'every key is an initializer');

  const session = await ort.InferenceSession.create(buildFaceNetMobileNetV1());
  t.same(session.inputNames, ['input']);
  t.same(session.outputNames, ['embedding']);

  // Three different images: random noise, flat grey, a horizontal ramp.
  const side = 160;
  const plane = side * side;
  const pixels = new Float32Array(3 * 3 * plane);
  pixels.set(new SeededRandom(5).uniformArray(3 * plane, 0, 1), 0);
  pixels.fill(0.5, 3 * plane, 6 * plane);
  for (let k = 0; k < 3 * plane; k++) pixels[6 * plane + k] = (k % side) / side;
  const out = await session.run({ input: new ort.Tensor('float32', pixels, [3, 3, side, side]) });
  const embedding = out.embedding!;
  t.same(embedding.dims, [3, 128]);
  const e = embedding.data as Float32Array;
  t.ok(stats(e).finite, 'finite');
  for (let r = 0; r < 3; r++) {
    const norm = Math.hypot(...e.subarray(r * 128, (r + 1) * 128));
    t.ok(Math.abs(norm - 1) < 1e-5, `row ${r} has unit L2 norm (${norm})`);
  }
  for (const [a, b] of [
    [0, 1],
    [0, 2],
    [1, 2],
  ] as const) {
    let maxDiff = 0;
    for (let k = 0; k < 128; k++) maxDiff = Math.max(maxDiff, Math.abs(e[a * 128 + k]! - e[b * 128 + k]!));
    t.ok(maxDiff > 1e-3, `embeddings ${a} and ${b} differ (max diff ${maxDiff.toFixed(4)})`);
  }
});

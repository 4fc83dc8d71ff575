// The engine's contract: loadModel/run/dispose, clear errors for bad input, whole networks against
// onnxruntime, and the runtime promises: the event loop keeps ticking, memory stays flat over many
// runs, runs work inside worker threads and several can be in flight.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { loadModel, devices, type Model } from '../lib/engine';
import { FaceError } from '../lib/errors';
import { OnnxGraphBuilder } from '../lib/onnx/builder';
import { SeededRandom } from '../lib/onnx/random';
import { buildRetinaFaceMnet025 } from '../lib/graphs/retinaface';
import { buildFaceNetMobileNetV1 } from '../lib/graphs/facenet';
import { repoRoot } from './helpers/data';
import { expectRejects } from './helpers/assertions';

// Whole networks: |facesight − onnxruntime| ≤ ATOL + RTOL·|onnxruntime| per element. The networks'
// outputs reach ~1e3 (box/landmark regressions on ±1 inputs through random weights), and fp32 sums
// over K up to 576 differ in rounding order, hence RTOL 1e-4 with ATOL scaled to the output range.
const RTOL = 1e-4;
const ATOL_FRACTION = 1e-5; // of the largest |value| in that output

function randomTensor(seed: number, dims: number[]): Float32Array {
  return new SeededRandom(seed).uniformArray(dims.reduce((a, b) => a * b, 1), -1, 1);
}

function tinyConvModel(): Uint8Array {
  const g = new OnnxGraphBuilder('tiny');
  g.input('x', ['N', 4, 'H', 'W']);
  g.initializer('w', new SeededRandom(3).uniformArray(4 * 4 * 9, -0.3, 0.3), [4, 4, 3, 3]);
  const [y] = g.node('Conv', ['x', 'w'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  const [z] = g.node('Relu', [y], {}, { outputs: ['y'] });
  g.output(z);
  return g.toBytes();
}


t.test('invalid input', async (t) => {
  const model = await loadModel(tinyConvModel(), { threads: 1 });
  const good = { data: new Float32Array(4 * 8 * 8), dims: [1, 4, 8, 8] };
  const run = (feeds: unknown) => model.run(feeds as Record<string, never>);
  // Argument mistakes reject (run is async throughout) with TypeError / RangeError that are FaceErrors.
  await t.rejects(run({ x: { data: new Float64Array(256), dims: [1, 4, 8, 8] } }), TypeError, 'wrong type: a TypeError');
  await t.rejects(run({ x: { data: new Float32Array(3), dims: [1, 4, 8, 8] } }), RangeError, 'wrong length: a RangeError');
  await expectRejects(t, Promise.resolve().then(() => run({ x: { data: new Float64Array(256), dims: [1, 4, 8, 8] } })),
    'E_INPUT', /Expected a Float32Array for input 'x'.data but received Float64Array/, 'wrong typed array');
  await expectRejects(t, Promise.resolve().then(() => run({ x: { data: new Float32Array(255), dims: [1, 4, 8, 8] } })),
    'E_INPUT', /Expected 256 values .* but received Float32Array of length 255/, 'wrong length');
  await expectRejects(t, Promise.resolve().then(() => run({})), 'E_INPUT', /input 'x'/, 'missing input');
  await expectRejects(t, Promise.resolve().then(() => run({ x: good, extra: good })), 'E_INPUT', /extra input 'extra'/, 'extra input');
  await expectRejects(t, Promise.resolve().then(() => run({ x: { data: new Float32Array(3 * 64), dims: [1, 3, 8, 8] } })),
    'E_INPUT', /size 4 at axis 1/, 'wrong channel count');
  await expectRejects(t, Promise.resolve().then(() => run({ x: { data: new Float32Array(256), dims: [4, 8, 8] } })),
    'E_INPUT', /rank 4/, 'wrong rank');
  await expectRejects(t, Promise.resolve().then(() => run({ x: { data: good.data, dims: [1, 4, 8, 8.5] } })),
    'E_INPUT', /non-negative integers/, 'fractional dim');
  const nan = new Float32Array(256);
  nan[100] = NaN;
  await expectRejects(t, run({ x: { data: nan, dims: [1, 4, 8, 8] } }), 'E_INPUT', /NaN at index 100/, 'NaN');
  const inf = new Float32Array(256);
  inf[7] = -Infinity;
  await expectRejects(t, run({ x: { data: inf, dims: [1, 4, 8, 8] } }), 'E_INPUT', /Infinity at index 7/, 'Infinity');
  // A rejected run leaves the model usable.
  const ok = await run({ x: good });
  t.same(ok.y.dims, [1, 4, 8, 8], 'the model still runs after rejected inputs');

  const bytes = tinyConvModel();
  await expectRejects(t, loadModel(bytes.subarray(0, bytes.length - 9)), 'E_MODEL', /Malformed ONNX model|never computed|not computed/, 'truncated model');
  await expectRejects(t, loadModel(new Uint8Array(0)), 'E_MODEL', /empty/, 'empty model');
  await expectRejects(t, loadModel(new TextEncoder().encode('this is not an onnx file at all, just text')), 'E_MODEL', /Malformed ONNX model/, 'text as model');
  const g = new OnnxGraphBuilder('bad');
  g.input('x', [1, 4]);
  g.node('NonMaxSuppression', ['x'], {}, { outputs: ['y'], name: 'nms_node' });
  g.output('y');
  await expectRejects(t, loadModel(g.toBytes()), 'E_MODEL', /Unsupported op NonMaxSuppression .*nms_node/, 'unsupported op');
  await expectRejects(t, loadModel(path.join(os.tmpdir(), 'no-such-model.onnx')), 'E_INPUT', /Cannot read model file/, 'missing file');
  await t.rejects(loadModel(42 as unknown as string), TypeError, 'a number as the source');
  await t.rejects(loadModel(bytes, { threads: 0 }), RangeError, 'threads 0');
  await t.rejects(loadModel(bytes, { device: 'tpu' as never }), TypeError, 'unknown device');
  model.dispose();
  await expectRejects(t, Promise.resolve().then(() => model.run({ x: good })), 'E_STATE', /disposed/, 'run after dispose');
});

t.test('devices() says what works here', async (t) => {
  const list = devices();
  const cpu = list.find((d) => d.name === 'cpu');
  const cuda = list.find((d) => d.name === 'cuda');
  t.ok(cpu?.available, `cpu available: ${cpu?.detail}`);
  t.ok(cuda, 'cuda listed');
  if (cuda && !cuda.available) t.match(cuda.detail, /\S/, `cuda unavailable, says why: ${cuda.detail}`);
  const auto = await loadModel(tinyConvModel(), { device: 'auto', precision: 'fp16' });
  if (cuda?.available) {
    // With a GPU, 'cuda' and 'auto' load onto it, and agree with the CPU on the same input.
    t.equal(auto.device, 'cuda', "'auto' picks the GPU");
    t.equal(auto.precision, 'fp16', 'in the precision asked for');
    const onGpu = await loadModel(tinyConvModel(), { device: 'cuda' });
    const onCpu = await loadModel(tinyConvModel(), { device: 'cpu' });
    const feeds = { x: { data: randomTensor(5, [1, 4, 8, 8]), dims: [1, 4, 8, 8] } };
    const [a, b] = [await onGpu.run(feeds), await onCpu.run(feeds)];
    const name = onCpu.outputs[0]!.name;
    let worst = 0;
    a[name]!.data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b[name]!.data[i]!))));
    t.ok(worst < 1e-4, `CUDA fp32 output matches the CPU within 1e-4 (${worst.toExponential(2)})`);
    onGpu.dispose();
    onCpu.dispose();
  } else {
    await expectRejects(t, loadModel(tinyConvModel(), { device: 'cuda' }), 'E_DEVICE', /cuda/i, "device 'cuda' without a usable GPU");
    t.equal(auto.device, 'cpu', "'auto' falls back to the CPU");
    t.equal(auto.precision, 'fp32', 'and to fp32: the CPU computes in fp32');
  }
  auto.dispose();
  await t.rejects(loadModel(tinyConvModel(), { device: 'cpu', precision: 'fp16' }), RangeError, "fp16 on device 'cpu'");
  await t.rejects(loadModel(tinyConvModel(), { precision: 'fp64' as never }), TypeError, 'unknown precision');
  const cpu32 = await loadModel(tinyConvModel());
  t.same([cpu32.device, cpu32.precision], ['cpu', 'fp32'], 'the default: CPU, fp32');
  cpu32.dispose();
});

async function compareWithOrt(t: Tap.Test, bytes: Uint8Array, input: string, dims: number[], seed: number) {
  const data = randomTensor(seed, dims);
  const model = await loadModel(bytes, { threads: 2 });
  const session = await ort.InferenceSession.create(bytes);
  const ours = await model.run({ [input]: { data, dims } });
  const theirs = await session.run({ [input]: new ort.Tensor('float32', data, dims) });
  for (const name of Object.keys(theirs)) {
    const a = ours[name].data;
    const b = theirs[name].data as Float32Array;
    t.same(ours[name].dims, [...theirs[name].dims], `${name} dims ${theirs[name].dims.join('×')}`);
    let range = 0;
    for (const v of b) range = Math.max(range, Math.abs(v));
    let worst = 0;
    for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (ATOL_FRACTION * range + RTOL * Math.abs(b[i])));
    t.ok(worst <= 1, `${name}: within tolerance (worst ratio ${worst.toFixed(3)}, range ${range.toFixed(2)})`);
  }
  model.dispose();
}

t.test('RetinaFace-mnet0.25 matches onnxruntime at several sizes and batches', async (t) => {
  const bytes = buildRetinaFaceMnet025();
  await compareWithOrt(t, bytes, 'input0', [1, 3, 640, 640], 1);
  await compareWithOrt(t, bytes, 'input0', [2, 3, 97, 131], 2); // odd sizes: no multiple-of-32 rule
  await compareWithOrt(t, bytes, 'input0', [1, 3, 480, 361], 3);
});

t.test('FaceNet-MobileNetV1 matches onnxruntime at batch 1 and 5', async (t) => {
  const bytes = buildFaceNetMobileNetV1();
  await compareWithOrt(t, bytes, 'input', [1, 3, 160, 160], 4);
  await compareWithOrt(t, bytes, 'input', [5, 3, 160, 160], 5);
});

t.test('model metadata', async (t) => {
  const model = await loadModel(buildRetinaFaceMnet025(), { threads: 1 });
  t.same(model.inputs, [{ name: 'input0', dims: ['N', 3, 'H', 'W'] }]);
  t.same(model.outputs.map((o) => o.name), ['loc', 'conf', 'landms']);
  t.equal(model.threads, 1);
  model.dispose();
  t.throws(() => model.threads, { code: 'E_STATE' });
});

t.test('the event loop keeps ticking during runs', async (t) => {
  const model = await loadModel(buildRetinaFaceMnet025(), { threads: 1 });
  const dims = [2, 3, 640, 640];
  const data = randomTensor(9, dims);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const t0 = performance.now();
  await model.run({ input0: { data, dims } });
  const elapsed = performance.now() - t0;
  clearInterval(timer);
  // A blocked loop would tick 0–1 times; a free one ticks about once per millisecond.
  t.ok(ticks >= Math.max(5, elapsed / 10), `${ticks} ticks during a ${elapsed.toFixed(0)} ms run`);
  model.dispose();
});

t.test('several runs in flight resolve with their own results', async (t) => {
  const model = await loadModel(tinyConvModel(), { threads: 1 });
  const inputs = [1, 2, 3, 4, 5, 6].map((s) => randomTensor(s, [1, 4, 16, 16]));
  const parallel = await Promise.all(inputs.map((data) => model.run({ x: { data, dims: [1, 4, 16, 16] } })));
  for (let k = 0; k < inputs.length; k++) {
    const alone = await model.run({ x: { data: inputs[k], dims: [1, 4, 16, 16] } });
    t.same(parallel[k].y.data, alone.y.data, `run ${k} in parallel equals run ${k} alone`);
  }
  model.dispose();
});

t.test('1,000 runs do not grow resident memory', async (t) => {
  const model = await loadModel(buildFaceNetMobileNetV1(), { threads: 1 });
  const dims = [1, 3, 160, 160];
  const data = randomTensor(11, dims);
  const runOnce = () => model.run({ input: { data, dims } });
  for (let k = 0; k < 50; k++) await runOnce(); // plans, caches and allocator pools settle
  global.gc?.();
  const before = process.memoryUsage().rss;
  for (let k = 0; k < 1000; k++) await runOnce();
  global.gc?.();
  const growth = (process.memoryUsage().rss - before) / 2 ** 20;
  // Outputs are 512 B each; 1,000 leaked plans or inputs would be > 100 MB. Bound: 24 MiB.
  t.ok(growth < 24, `RSS grew ${growth.toFixed(1)} MiB over 1,000 runs (bound 24 MiB)`);
  model.dispose();
});

t.test('runs inside a worker thread', async (t) => {
  const bytes = tinyConvModel();
  const script = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { loadModel } = require(workerData.entry);
    (async () => {
      const model = await loadModel(workerData.bytes, { threads: 1 });
      const data = new Float32Array(4 * 8 * 8).fill(1);
      const out = await model.run({ x: { data, dims: [1, 4, 8, 8] } });
      parentPort.postMessage(Array.from(out.y.data.slice(0, 8)));
      model.dispose();
    })().catch((e) => parentPort.postMessage({ error: String(e) }));`;
  const entry = path.join(repoRoot, 'dist', 'engine.js');
  if (!fs.existsSync(entry)) {
    t.fail('dist/engine.js missing: run `npm run build:ts` (npm install does it)');
    return;
  }
  const fromWorker = await new Promise<unknown>((resolve, reject) => {
    const worker = new Worker(script, { eval: true, workerData: { bytes, entry } });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const model = await loadModel(bytes, { threads: 1 });
  const out = await model.run({ x: { data: new Float32Array(256).fill(1), dims: [1, 4, 8, 8] } });
  t.same(fromWorker, Array.from(out.y.data.slice(0, 8)), 'same result in a worker as on the main thread');
  model.dispose();
});

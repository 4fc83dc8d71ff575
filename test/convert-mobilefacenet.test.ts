// MobileFaceNet converter: the graph consumes exactly the published checkpoint's tensors (the
// project's key listing), runs the same on onnxruntime and on facesight, and both match an
// independent float64 forward pass of the architecture written plainly below (the weights'
// publisher, PyTorch, is not available here, so this plain reference stands in for it).
import t from 'tap';
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../lib/engine';
import { FaceError } from '../lib/errors';
import { SeededRandom } from '../lib/onnx/random';
import { readTorchCheckpoint, toFloat32, type TorchTensor } from '../lib/convert/torch-checkpoint';
import { convertMobileFaceNet, convertMobileFaceNetFromTensors } from '../lib/convert/mobilefacenet';
import { mobileFaceNetKeys } from '../lib/graphs/mobilefacenet';
import { dataPath } from './helpers/data';

// Engines against each other: |a − b| ≤ 1e-4 · max|b| (fp32 sums in different orders, ~50 layers).
// Engines against the float64 reference: ≤ 5e-4 · max|ref| (fp32 vs fp64 through the same depth).
const ENGINE_TOLERANCE = 1e-4;
const REFERENCE_TOLERANCE = 5e-4;
const CHECKPOINT = 'weights/embedding_candidate/mobilefacenet_casia_068.ckpt';
const LISTING = 'weights/embedding_candidate/mobilefacenet_casia_068.keys.txt';

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// ---- plain float64 reference of the architecture (one image, CHW arrays) ----
interface Map3 { c: number; h: number; w: number; v: Float64Array }

function conv(x: Map3, weight: Float32Array, out: number, kh: number, kw: number, stride: number, pad: number, groups: number): Map3 {
  const oh = Math.floor((x.h + 2 * pad - kh) / stride) + 1, ow = Math.floor((x.w + 2 * pad - kw) / stride) + 1;
  const cinG = x.c / groups, coutG = out / groups;
  const y = new Float64Array(out * oh * ow);
  for (let o = 0; o < out; o++) {
    const g = Math.floor(o / coutG);
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++) {
        let acc = 0;
        for (let c = 0; c < cinG; c++)
          for (let a = 0; a < kh; a++) {
            const yy = i * stride - pad + a;
            if (yy < 0 || yy >= x.h) continue;
            for (let b = 0; b < kw; b++) {
              const xx = j * stride - pad + b;
              if (xx < 0 || xx >= x.w) continue;
              acc += x.v[((g * cinG + c) * x.h + yy) * x.w + xx] * weight[((o * cinG + c) * kh + a) * kw + b];
            }
          }
        y[(o * oh + i) * ow + j] = acc;
      }
  }
  return { c: out, h: oh, w: ow, v: y };
}

function bnPrelu(x: Map3, sd: Map<string, Float32Array>, bn: string, prelu?: string): Map3 {
  const g = sd.get(`${bn}.weight`)!, b = sd.get(`${bn}.bias`)!, m = sd.get(`${bn}.running_mean`)!, v = sd.get(`${bn}.running_var`)!;
  const slope = prelu ? sd.get(`${prelu}.weight`)! : undefined;
  const hw = x.h * x.w;
  for (let c = 0; c < x.c; c++) {
    const s = g[c] / Math.sqrt(v[c] + 1e-5);
    for (let i = 0; i < hw; i++) {
      let y = (x.v[c * hw + i] - m[c]) * s + b[c];
      if (slope && y < 0) y *= slope[c];
      x.v[c * hw + i] = y;
    }
  }
  return x;
}

function referenceForward(sd: Map<string, Float32Array>, image: Float32Array): Float64Array {
  let x: Map3 = { c: 3, h: 112, w: 96, v: Float64Array.from(image) };
  x = bnPrelu(conv(x, sd.get('conv1.conv.weight')!, 64, 3, 3, 2, 1, 1), sd, 'conv1.bn', 'conv1.prelu');
  x = bnPrelu(conv(x, sd.get('dw_conv1.conv.weight')!, 64, 3, 3, 1, 1, 64), sd, 'dw_conv1.bn', 'dw_conv1.prelu');
  const settings = [[2, 64, 2], [2, 64, 1], [2, 64, 1], [2, 64, 1], [2, 64, 1], [4, 128, 2], [2, 128, 1], [2, 128, 1],
    [2, 128, 1], [2, 128, 1], [2, 128, 1], [2, 128, 1], [4, 128, 2], [2, 128, 1], [2, 128, 1]];
  settings.forEach(([e, out, s], i) => {
    const k = `blocks.${i}.conv`, mid = x.c * e;
    let y = bnPrelu(conv(x, sd.get(`${k}.0.weight`)!, mid, 1, 1, 1, 0, 1), sd, `${k}.1`, `${k}.2`);
    y = bnPrelu(conv(y, sd.get(`${k}.3.weight`)!, mid, 3, 3, s, 1, mid), sd, `${k}.4`, `${k}.5`);
    y = bnPrelu(conv(y, sd.get(`${k}.6.weight`)!, out, 1, 1, 1, 0, 1), sd, `${k}.7`);
    if (s === 1 && x.c === out) for (let q = 0; q < y.v.length; q++) y.v[q] += x.v[q];
    x = y;
  });
  x = bnPrelu(conv(x, sd.get('conv2.conv.weight')!, 512, 1, 1, 1, 0, 1), sd, 'conv2.bn', 'conv2.prelu');
  x = bnPrelu(conv(x, sd.get('linear7.conv.weight')!, 512, 7, 6, 1, 0, 512), sd, 'linear7.bn');
  x = bnPrelu(conv(x, sd.get('linear1.conv.weight')!, 128, 1, 1, 1, 0, 1), sd, 'linear1.bn');
  return x.v;
}

t.test('invalid input', async (t) => {
  const keys = mobileFaceNetKeys();
  const synthetic = new Map<string, TorchTensor>(
    keys.map((k) => [k.key, { key: k.key, dtype: 'float32', dims: [...k.dims], data: new Float32Array(k.dims.reduce((a, b) => a * b, 1)) }]),
  );
  t.ok(convertMobileFaceNetFromTensors(synthetic).length > 0, 'the exact key set converts');
  const missing = new Map(synthetic);
  missing.delete('blocks.7.conv.3.weight');
  t.throws(() => convertMobileFaceNetFromTensors(missing), { code: 'E_MODEL', message: /missing the weight 'blocks\.7\.conv\.3\.weight' \[256, 1, 3, 3\]/ }, 'a missing key');
  const wrong = new Map(synthetic);
  wrong.set('linear7.conv.weight', { key: 'linear7.conv.weight', dtype: 'float32', dims: [512, 1, 7, 7], data: new Float32Array(512 * 49) });
  t.throws(() => convertMobileFaceNetFromTensors(wrong), { code: 'E_MODEL', message: /Expected dims \[512, 1, 7, 6\] for weight 'linear7\.conv\.weight'/ }, 'a wrong shape');
  await t.rejects(convertMobileFaceNet(new Uint8Array([0x80, 0x02, 0x8a])), { code: 'E_MODEL' }, 'a truncated checkpoint');
  await t.rejects(convertMobileFaceNet(42 as unknown as string), TypeError, 'not a checkpoint argument');
});

t.test('the published checkpoint', async (t) => {
  const file = dataPath(t, CHECKPOINT);
  const listing = dataPath(t, LISTING);
  if (!file || !listing) return;
  // The graph's keys are exactly the listing's tensors, minus the net_state_dict prefix and BN counters.
  const listed = fs.readFileSync(listing, 'utf8').split('\n')
    .filter((l) => l.startsWith('net_state_dict.') && !l.includes('num_batches_tracked'))
    .map((l) => { const [name, , dims] = l.split('\t'); return `${name.slice('net_state_dict.'.length)} ${dims}`; });
  const graphKeys = mobileFaceNetKeys().map((k) => `${k.key} [${k.dims.join(', ')}]`);
  t.same([...graphKeys].sort(), [...listed].sort(), `the graph consumes the ${listed.length} listed tensors with their dims`);

  const bytes = fs.readFileSync(file);
  const onnx = await convertMobileFaceNet(bytes);
  const sd = new Map([...readTorchCheckpoint(bytes)].map(([k, v]) => [k, toFloat32(v)] as const));
  const rng = new SeededRandom(5);
  const dims = [2, 3, 112, 96];
  // Inputs in the network's normalised range ((x − 127.5) / 128 of 8-bit pixels).
  const data = rng.uniformArray(dims.reduce((a, b) => a * b, 1), -1, 1);
  const model = await loadModel(onnx, { threads: 2 });
  const ours = (await model.run({ input: { data, dims } })).embedding;
  const session = await ort.InferenceSession.create(onnx);
  const theirs = (await session.run({ input: new ort.Tensor('float32', data, dims) })).embedding;
  t.same(ours.dims, [2, 128], 'embedding dims');
  const engineDiff = maxDiff(ours.data, theirs.data as Float32Array) / maxAbs(theirs.data as Float32Array);
  t.ok(engineDiff <= ENGINE_TOLERANCE, `facesight vs onnxruntime: ${engineDiff.toExponential(2)} of the range`);
  const reference = referenceForward(sd, data.subarray(0, 3 * 112 * 96));
  const refDiff = maxDiff(ours.data.subarray(0, 128), reference) / maxAbs(reference);
  t.ok(refDiff <= REFERENCE_TOLERANCE, `facesight vs the float64 reference: ${refDiff.toExponential(2)} of the range`);
  const ortRef = maxDiff((theirs.data as Float32Array).subarray(0, 128), reference) / maxAbs(reference);
  t.ok(ortRef <= REFERENCE_TOLERANCE, `onnxruntime vs the float64 reference: ${ortRef.toExponential(2)} of the range`);
  // Two different inputs give clearly different embeddings (the check above is not vacuous).
  t.ok(maxDiff(ours.data.subarray(0, 128), ours.data.subarray(128)) > 0.05 * maxAbs(reference), 'different inputs, different embeddings');
  model.dispose();
});

t.test('errors are FaceErrors', async (t) => {
  await t.rejects(convertMobileFaceNet('/nonexistent/068.ckpt'), FaceError);
});

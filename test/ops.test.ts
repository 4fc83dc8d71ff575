// Every op the engine supports, proved against onnxruntime-node on seeded random inputs over a matrix
// of shapes, batches and attributes: each case builds a one-node (or tiny) ONNX model, runs it on
// both engines with the same inputs and compares every output.
//
// Tolerances (float32). An output element passes when |facesight − ort| ≤ atol + rtol·|ort|.
//   RTOL = 1e-4, ATOL = 1e-5: both engines compute in float32 but in different orders (SIMD lanes,
//   blocking, FMA, vectorised exp/tanh), which costs a few ulps (ulp = 6e-8 relative) per value.
//   Dot products (Conv, Gemm, MatMul) over K terms: the rounding error of a K-term float32 sum is a
//   random walk of ~sqrt(K) ulps of the partial sums. Weights are scaled by 1/sqrt(K) so outputs
//   are O(1), and atol is ATOL·sqrt(K/64) when K > 64 (K = 1152 → 4.2e-5). See dotTolerance().
// Every random tensor comes from SeededRandom seeded by a hash of the case's label, so a failure
// reproduces by itself, whatever runs before it.
import t from 'tap';
import * as ort from 'onnxruntime-node';
import { loadModel, type Tensor } from '../lib/engine';
import { FaceError } from '../lib/errors';
import { OnnxGraphBuilder, int64Array, type AttrValue, type Dim, type TensorData } from '../lib/onnx/builder';
import { SeededRandom } from '../lib/onnx/random';

const RTOL = 1e-4;
const ATOL = 1e-5;

interface Tolerance {
  rtol: number;
  atol: number;
}

/** Tolerance for a dot product over k terms (see the header). */
function dotTolerance(k: number): Tolerance {
  return { rtol: RTOL, atol: ATOL * Math.max(1, Math.sqrt(k / 64)) };
}

type Feeds = Record<string, Tensor>;

interface CheckOptions extends Partial<Tolerance> {
  label?: string;
  /** facesight CPU threads (default 2). */
  threads?: number;
}

const ortOptions: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };
const INT64_MAX = 9223372036854775807n;

function count(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/**
 * Runs `bytes` on onnxruntime and on facesight with the same feeds (several feeds: all through the
 * same loaded model and session) and asserts, for every output: same names, same dims, and
 * |a − b| ≤ atol + rtol·|b| everywhere. Also checks that facesight left the inputs untouched.
 */
async function expectSameAsOrt(t: tap.Test, bytes: Uint8Array, feeds: Feeds | Feeds[], options: CheckOptions = {}): Promise<void> {
  const rtol = options.rtol ?? RTOL;
  const atol = options.atol ?? ATOL;
  const label = options.label ?? 'model';
  let session: ort.InferenceSession | undefined;
  let model: Awaited<ReturnType<typeof loadModel>> | undefined;
  try {
    session = await ort.InferenceSession.create(bytes, ortOptions);
    model = await loadModel(bytes, { threads: options.threads ?? 2 });
    for (const f of Array.isArray(feeds) ? feeds : [feeds]) {
      const at = Array.isArray(feeds) ? ` @ ${Object.values(f).map((v) => `[${v.dims.join(',')}]`).join(' ')}` : '';
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, v] of Object.entries(f)) ortFeeds[name] = new ort.Tensor('float32', v.data.slice(), [...v.dims]);
      const expected = await session.run(ortFeeds);
      const before = Object.values(f).map((v) => v.data.slice());
      const got = await model.run(f);
      Object.values(f).forEach((v, k) => {
        if (!Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength).equals(Buffer.from(before[k]!.buffer)))
          t.fail(`${label}${at}: facesight modified an input`);
      });
      t.same(Object.keys(got).sort(), [...session.outputNames].sort(), `${label}${at}: output names`);
      for (const name of session.outputNames) {
        const e = expected[name]!;
        const g = got[name];
        if (!g) continue;
        const what = `${label}${at} → ${name}`;
        if (!t.same([...g.dims], [...e.dims], `${what}: dims`)) continue;
        const a = g.data;
        const b = e.data as Float32Array;
        // NaN where ort has NaN passes; NaN on one side only is the worst possible excess.
        let maxDiff = 0;
        let worst = -1;
        let worstExcess = 0;
        for (let i = 0; i < b.length; i++) {
          if (Number.isNaN(a[i]!) && Number.isNaN(b[i]!)) continue;
          const d = Math.abs(a[i]! - b[i]!);
          const excess = Number.isNaN(d) ? Infinity : d - (atol + rtol * Math.abs(b[i]!));
          maxDiff = Number.isNaN(d) ? Infinity : Math.max(maxDiff, d);
          if (excess > 0 && excess > worstExcess) {
            worst = i;
            worstExcess = excess;
          }
        }
        if (worst < 0) t.pass(`${what}: max|a−b| ${maxDiff.toExponential(1)}`);
        else
          t.fail(`${what}: max|a−b| ${maxDiff.toExponential(2)} > atol ${atol} + rtol ${rtol}·|b|`, {
            worstIndex: worst,
            got: a[worst],
            expected: b[worst],
            dims: e.dims,
          });
      }
    }
  } catch (error) {
    // One failing case must not stop the rest of its block.
    const e = error as { code?: string; message?: string };
    t.fail(`${label}: ${session ? 'facesight' : 'onnxruntime'} threw ${e.code ?? ''} ${e.message ?? String(error)}`);
  } finally {
    model?.dispose();
    await session?.release();
  }
}

// ---------------------------------------------------------------------------------------------
// Case builders.

/** Stable 32-bit FNV-1a hash of a label: the seed of that case. */
function seedOf(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Random data for a graph input: normal(0, std) by default, or uniform in [low, high), or ±[low, high) with `signed`. */
interface Range {
  low?: number;
  high?: number;
  std?: number;
  signed?: boolean;
}

function randomData(rng: SeededRandom, n: number, r: Range = {}): Float32Array {
  if (r.low === undefined) return rng.normalArray(n, 0, r.std ?? 1);
  const out = rng.uniformArray(n, r.low, r.high ?? r.low + 1);
  if (r.signed) for (let i = 0; i < n; i++) if (rng.next() < 0.5) out[i] = -out[i]!;
  return out;
}

function rand(rng: SeededRandom, dims: readonly number[], r: Range = {}): Tensor {
  return { data: randomData(rng, count(dims), r), dims: [...dims] };
}

type Arg =
  | { kind: 'input'; dims: number[]; range: Range }
  | { kind: 'init'; data: TensorData; dims: number[] }
  | { kind: 'randinit'; dims: number[]; range: Range }
  | '';

/** A graph input with random data. */
const X = (dims: number[], range: Range = {}): Arg => ({ kind: 'input', dims, range });
/** A random float initializer. */
const W = (dims: number[], range: Range = {}): Arg => ({ kind: 'randinit', dims, range });
/** A fixed float initializer. */
const F = (values: number[], dims: number[] = [values.length]): Arg => ({ kind: 'init', data: new Float32Array(values), dims });
/** An int64 initializer. */
const I = (values: number[], dims: number[] = [values.length]): Arg => ({ kind: 'init', data: int64Array(values), dims });

function describeArg(a: Arg): string {
  if (a === '') return "''";
  if (a.kind === 'input') return `x[${a.dims.join(',')}]`;
  if (a.kind === 'randinit') return `w[${a.dims.join(',')}]`;
  if (a.data instanceof BigInt64Array) return `i64[${Array.from(a.data, String).join(',')}]`;
  return a.dims.length === 0 || count(a.dims) <= 4 ? `f[${Array.from(a.data as Float32Array).join(',')}]` : `f[${a.dims.join(',')}]`;
}

function describeAttrs(attrs: Record<string, AttrValue>): string {
  const parts = Object.entries(attrs).map(([k, v]) => {
    if (typeof v === 'object' && v !== null && 'f' in v) return `${k}=${v.f}`;
    if (typeof v === 'object' && v !== null && 'i' in v) return `${k}=${v.i}`;
    return `${k}=${JSON.stringify(v)}`;
  });
  return parts.length ? ` {${parts.join(' ')}}` : '';
}

interface CaseOptions extends Partial<Tolerance> {
  opset?: number;
  outputs?: number;
  label?: string;
  threads?: number;
}

/** Adds the args of a case to `g`; returns their value names and the feeds for the graph inputs. */
function addArgs(g: OnnxGraphBuilder, rng: SeededRandom, args: readonly Arg[], feeds: Feeds): string[] {
  return args.map((a) => {
    if (a === '') return '';
    if (a.kind === 'input') {
      const name = g.uniqueName('x');
      g.input(name, a.dims);
      feeds[name] = rand(rng, a.dims, a.range);
      return name;
    }
    const name = g.uniqueName('w');
    if (a.kind === 'init') return g.initializer(name, a.data, a.dims);
    return g.initializer(name, randomData(rng, count(a.dims), a.range), a.dims);
  });
}

/** One node over `args`; every output of it is a graph output. */
async function op1(t: tap.Test, opType: string, args: readonly Arg[], attrs: Record<string, AttrValue> = {}, opts: CaseOptions = {}): Promise<void> {
  const opset = opts.opset ?? 13;
  const label = opts.label ?? `${opType}(${args.map(describeArg).join(', ')})${describeAttrs(attrs)} opset ${opset}`;
  const rng = new SeededRandom(seedOf(label));
  const g = new OnnxGraphBuilder(opType);
  const feeds: Feeds = {};
  const names = addArgs(g, rng, args, feeds);
  for (const y of g.node(opType, names, attrs, { outputs: opts.outputs ?? 1 })) g.output(y);
  await expectSameAsOrt(t, g.toBytes({ opset }), feeds, { ...opts, label });
}

// ---------------------------------------------------------------------------------------------
// Conv helpers.

interface ConvSpec {
  n: number;
  c: number;
  h: number;
  w: number;
  m: number;
  k: [number, number];
  strides?: [number, number];
  pads?: [number, number, number, number];
  dilations?: [number, number];
  group?: number;
  autoPad?: string;
  bias?: boolean;
  /** Write kernel_shape (as torch does); default true. */
  kernelShape?: boolean;
  threads?: number;
}

function convLabel(s: ConvSpec): string {
  const parts = [`Conv x[${s.n},${s.c},${s.h},${s.w}] → ${s.m} k${s.k.join('x')}`];
  if (s.strides) parts.push(`s${s.strides.join(',')}`);
  if (s.pads) parts.push(`p[${s.pads.join(',')}]`);
  if (s.dilations) parts.push(`d${s.dilations.join(',')}`);
  if (s.group && s.group > 1) parts.push(`g${s.group}`);
  if (s.autoPad) parts.push(s.autoPad);
  if (s.bias === false) parts.push('no bias');
  if (s.kernelShape === false) parts.push('no kernel_shape');
  if (s.threads) parts.push(`threads ${s.threads}`);
  return parts.join(' ');
}

/** Adds a Conv on `x` with random weights scaled by 1/sqrt(K); returns its output and K. */
function addConv(g: OnnxGraphBuilder, rng: SeededRandom, x: string, s: Omit<ConvSpec, 'n' | 'h' | 'w'>): { y: string; k: number } {
  const group = s.group ?? 1;
  const k = (s.c / group) * s.k[0] * s.k[1];
  const wDims = [s.m, s.c / group, s.k[0], s.k[1]];
  const inputs = [g.initializer(g.uniqueName('conv_w'), rng.normalArray(count(wDims), 0, 1 / Math.sqrt(k)), wDims)];
  if (s.bias !== false) inputs.push(g.initializer(g.uniqueName('conv_b'), rng.normalArray(s.m, 0, 0.5), [s.m]));
  const attrs: Record<string, AttrValue> = {};
  if (s.kernelShape !== false) attrs.kernel_shape = s.k;
  if (s.strides) attrs.strides = s.strides;
  if (s.pads) attrs.pads = s.pads;
  if (s.dilations) attrs.dilations = s.dilations;
  if (s.group) attrs.group = s.group;
  if (s.autoPad) attrs.auto_pad = s.autoPad;
  const [y] = g.node('Conv', [x, ...inputs], attrs);
  return { y: y!, k };
}

async function convCase(t: tap.Test, s: ConvSpec): Promise<void> {
  const label = convLabel(s);
  const rng = new SeededRandom(seedOf(label));
  const g = new OnnxGraphBuilder('conv');
  const x = g.input('x', [s.n, s.c, s.h, s.w]);
  const { y, k } = addConv(g, rng, x, s);
  g.output(y);
  await expectSameAsOrt(t, g.toBytes(), { x: rand(rng, [s.n, s.c, s.h, s.w]) }, { ...dotTolerance(k), label, threads: s.threads });
}

/** BatchNormalization parameters for c channels (variance kept away from 0). */
function addBatchNorm(g: OnnxGraphBuilder, rng: SeededRandom, x: string, c: number, attrs: Record<string, AttrValue> = {}): string {
  const p = (what: string, data: Float32Array): string => g.initializer(g.uniqueName(`bn_${what}`), data, [c]);
  const inputs = [
    p('scale', rng.normalArray(c, 1, 0.3)),
    p('bias', rng.normalArray(c, 0, 0.5)),
    p('mean', rng.normalArray(c, 0, 0.5)),
    p('var', rng.uniformArray(c, 0.3, 2)),
  ];
  return g.node('BatchNormalization', [x, ...inputs], attrs)[0]!;
}

/** A Conv followed by `tail` (which adds nodes after the conv output and returns the new outputs). */
async function convThen(
  t: tap.Test,
  label: string,
  s: ConvSpec,
  tail: (g: OnnxGraphBuilder, rng: SeededRandom, y: string) => string[],
  opset = 13,
): Promise<void> {
  const rng = new SeededRandom(seedOf(label));
  const g = new OnnxGraphBuilder('fused');
  const x = g.input('x', [s.n, s.c, s.h, s.w]);
  const { y, k } = addConv(g, rng, x, s);
  for (const out of tail(g, rng, y)) g.output(out);
  await expectSameAsOrt(t, g.toBytes({ opset }), { x: rand(rng, [s.n, s.c, s.h, s.w]) }, { ...dotTolerance(k), label: `${label} (${convLabel(s)}) opset ${opset}` });
}

// ---------------------------------------------------------------------------------------------

t.test('invalid input', async (t) => {
  const reject = async (bytes: Uint8Array, code: string, message: RegExp, what: string): Promise<void> => {
    try {
      const model = await loadModel(bytes, { threads: 1 });
      // Some checks may only be possible once shapes are known: then the run must reject.
      try {
        const feeds: Feeds = {};
        for (const i of model.inputs) feeds[i.name] = { data: new Float32Array(count(i.dims as number[])), dims: i.dims as number[] };
        await model.run(feeds);
        t.fail(`${what}: expected a rejection at load or run`);
      } finally {
        model.dispose();
      }
    } catch (error) {
      t.ok(error instanceof FaceError, `${what}: a FaceError`);
      t.match(error, { code, message }, what);
    }
  };

  for (const op of ['Einsum', 'NonMaxSuppression']) {
    const g = new OnnxGraphBuilder();
    const x = g.input('x', [2, 3]);
    const inputs = op === 'Einsum' ? [x, x] : [g.input('boxes', [1, 2, 4]), g.input('scores', [1, 1, 2])];
    g.node(op, inputs, op === 'Einsum' ? { equation: 'ij,ij->i' } : {}, { name: `the_${op}_node`, outputs: ['y'] });
    g.output('y');
    await t.rejects(loadModel(g.toBytes({ opset: 13 })), { name: 'FaceError', code: 'E_MODEL', message: new RegExp(`${op}.*the_${op}_node`) }, `${op} rejects at load naming the op and the node`);
  }
  {
    const g = new OnnxGraphBuilder();
    g.node('Relu', [g.input('x', [2])], {}, { name: 'custom_relu', outputs: ['y'], domain: 'com.example' });
    g.output('y');
    await t.rejects(loadModel(g.toBytes()), { code: 'E_MODEL', message: /com\.example.*Relu.*custom_relu/ }, 'an op from another domain rejects');
  }
  {
    // Conv on a 5-D input (a 3-D convolution): not supported, and said so clearly.
    const g = new OnnxGraphBuilder();
    const x = g.input('x', [1, 2, 4, 4, 4]);
    const w = g.initializer('w', new Float32Array(3 * 2 * 27), [3, 2, 3, 3, 3]);
    g.node('Conv', [x, w], { kernel_shape: [3, 3, 3] }, { name: 'conv3d', outputs: ['y'] });
    g.output('y');
    await reject(g.toBytes(), 'E_MODEL', /Conv.*'conv3d'[\s\S]*(4-D|2-D)[\s\S]*\[1, 2, 4, 4, 4\]/, 'Conv with a 5-D input');
  }
  {
    const g = new OnnxGraphBuilder();
    g.node('Relu', [g.input('x', ['N', 3])], {}, { outputs: ['y'] });
    g.output('y');
    const model = await loadModel(g.toBytes(), { threads: 1 });
    await t.rejects(model.run({ x: { data: new Float32Array(6), dims: [3, 2] } }), { name: 'RangeError', code: 'E_INPUT', message: /size 3 at axis 1/ }, 'wrong fixed size');
    await t.rejects(model.run({ x: { data: new Float32Array(6), dims: [6] } }), { name: 'RangeError', code: 'E_INPUT', message: /rank 2/ }, 'wrong rank');
    model.dispose();
  }
});

t.test('Conv', async (t) => {
  const cases: ConvSpec[] = [
    // 1×1
    { n: 1, c: 3, h: 8, w: 8, m: 5, k: [1, 1] },
    { n: 3, c: 17, h: 7, w: 9, m: 5, k: [1, 1], strides: [2, 2] },
    { n: 1, c: 5, h: 1, w: 1, m: 17, k: [1, 1], bias: false },
    { n: 1, c: 64, h: 6, w: 6, m: 128, k: [1, 1] },
    { n: 2, c: 128, h: 5, w: 5, m: 64, k: [1, 1] },
    // 3×3
    { n: 1, c: 3, h: 13, w: 17, m: 8, k: [3, 3], pads: [1, 1, 1, 1] },
    { n: 3, c: 3, h: 13, w: 17, m: 8, k: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
    { n: 1, c: 5, h: 9, w: 10, m: 17, k: [3, 3] },
    { n: 1, c: 5, h: 9, w: 10, m: 17, k: [3, 3], bias: false },
    { n: 1, c: 5, h: 9, w: 10, m: 17, k: [3, 3], kernelShape: false },
    { n: 1, c: 17, h: 11, w: 8, m: 5, k: [3, 3], pads: [0, 0, 1, 1], strides: [2, 2] },
    { n: 2, c: 5, h: 10, w: 11, m: 3, k: [3, 3], pads: [1, 2, 0, 1] },
    { n: 1, c: 3, h: 1, w: 1, m: 4, k: [3, 3], pads: [1, 1, 1, 1] },
    { n: 1, c: 3, h: 2, w: 3, m: 4, k: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] },
    // 5×5, 7×1, 1×7
    { n: 1, c: 3, h: 12, w: 13, m: 6, k: [5, 5], pads: [2, 2, 2, 2] },
    { n: 3, c: 5, h: 12, w: 13, m: 4, k: [5, 5], pads: [2, 2, 2, 2], strides: [2, 2] },
    { n: 1, c: 5, h: 15, w: 9, m: 7, k: [7, 1], pads: [3, 0, 3, 0] },
    { n: 1, c: 5, h: 9, w: 15, m: 7, k: [1, 7], pads: [0, 3, 0, 3] },
    { n: 1, c: 4, h: 9, w: 15, m: 3, k: [1, 7], strides: [1, 2] },
    // auto_pad
    { n: 1, c: 3, h: 13, w: 17, m: 5, k: [3, 3], autoPad: 'SAME_UPPER' },
    { n: 1, c: 3, h: 13, w: 17, m: 5, k: [3, 3], autoPad: 'SAME_UPPER', strides: [2, 2] },
    { n: 1, c: 3, h: 13, w: 17, m: 5, k: [4, 4], autoPad: 'SAME_UPPER', strides: [2, 2] },
    { n: 1, c: 3, h: 13, w: 17, m: 5, k: [4, 4], autoPad: 'SAME_LOWER', strides: [2, 2] },
    { n: 2, c: 3, h: 13, w: 17, m: 5, k: [3, 3], autoPad: 'SAME_LOWER', strides: [2, 2] },
    { n: 1, c: 3, h: 13, w: 17, m: 5, k: [3, 3], autoPad: 'VALID', strides: [2, 2] },
    // dilations
    { n: 1, c: 5, h: 13, w: 17, m: 6, k: [3, 3], dilations: [2, 2], pads: [2, 2, 2, 2] },
    { n: 2, c: 4, h: 12, w: 11, m: 3, k: [3, 3], dilations: [2, 2], strides: [2, 2] },
    // groups
    { n: 1, c: 6, h: 9, w: 11, m: 4, k: [3, 3], group: 2, pads: [1, 1, 1, 1] },
    { n: 3, c: 10, h: 7, w: 7, m: 10, k: [1, 1], group: 2 },
    { n: 1, c: 34, h: 9, w: 9, m: 34, k: [3, 3], group: 2, pads: [1, 1, 1, 1], strides: [2, 2] },
    // depthwise (group = C)
    { n: 1, c: 17, h: 13, w: 17, m: 17, k: [3, 3], group: 17, pads: [1, 1, 1, 1] },
    { n: 3, c: 17, h: 13, w: 17, m: 17, k: [3, 3], group: 17, pads: [1, 1, 1, 1], strides: [2, 2] },
    { n: 1, c: 5, h: 1, w: 1, m: 5, k: [3, 3], group: 5, pads: [1, 1, 1, 1] },
    { n: 1, c: 5, h: 2, w: 3, m: 5, k: [3, 3], group: 5, pads: [1, 1, 1, 1], strides: [2, 2] },
    { n: 1, c: 32, h: 16, w: 16, m: 32, k: [3, 3], group: 32, pads: [1, 1, 1, 1], bias: false },
    { n: 2, c: 64, h: 15, w: 15, m: 64, k: [3, 3], group: 64, pads: [1, 1, 1, 1], strides: [2, 2] },
    { n: 1, c: 8, h: 13, w: 17, m: 8, k: [5, 5], group: 8, pads: [2, 2, 2, 2] },
    { n: 1, c: 8, h: 13, w: 17, m: 8, k: [3, 3], group: 8, dilations: [2, 2], pads: [2, 2, 2, 2] },
    { n: 1, c: 8, h: 13, w: 17, m: 8, k: [3, 3], group: 8, pads: [0, 0, 1, 1], strides: [2, 2] },
    { n: 1, c: 5, h: 9, w: 11, m: 10, k: [3, 3], group: 5, pads: [1, 1, 1, 1] }, // channel multiplier 2
    // realistic layer sizes (and odd thread counts)
    { n: 1, c: 3, h: 96, w: 112, m: 16, k: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
    { n: 1, c: 3, h: 320, w: 320, m: 8, k: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], threads: 3 },
    { n: 1, c: 64, h: 40, w: 40, m: 64, k: [1, 1], threads: 3 },
    { n: 1, c: 64, h: 10, w: 10, m: 128, k: [3, 3], pads: [1, 1, 1, 1] },
    { n: 1, c: 128, h: 8, w: 8, m: 128, k: [3, 3], pads: [1, 1, 1, 1], threads: 3 },
    { n: 1, c: 128, h: 8, w: 8, m: 128, k: [3, 3], pads: [1, 1, 1, 1], threads: 1 },
    { n: 1, c: 128, h: 20, w: 20, m: 128, k: [3, 3], group: 128, pads: [1, 1, 1, 1], threads: 3 },
    // outputs of 16 MiB and more are written with streaming stores (batched early layers)
    { n: 11, c: 16, h: 80, w: 80, m: 64, k: [3, 3], pads: [1, 1, 1, 1] },
    { n: 21, c: 3, h: 160, w: 160, m: 32, k: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
  ];
  for (const s of cases) await convCase(t, s);
});

t.test('Conv + activation / BatchNormalization (fused by the engine)', async (t) => {
  const specs: ConvSpec[] = [
    { n: 2, c: 5, h: 9, w: 11, m: 17, k: [3, 3], pads: [1, 1, 1, 1] },
    { n: 1, c: 17, h: 13, w: 17, m: 17, k: [3, 3], group: 17, pads: [1, 1, 1, 1], strides: [2, 2] },
    { n: 1, c: 16, h: 6, w: 7, m: 24, k: [1, 1], bias: false },
    { n: 2, c: 16, h: 6, w: 7, m: 32, k: [3, 3], pads: [1, 1, 1, 1] }, // NCHW16c output: the blocked kernel's epilogue
  ];
  const scalar = (g: OnnxGraphBuilder, v: number): string => g.initializer(g.uniqueName('s'), new Float32Array([v]), []);
  for (const s of specs) {
    await convThen(t, 'Conv→Relu', s, (g, _, y) => g.node('Relu', [y]));
    await convThen(t, 'Conv→LeakyRelu(0.1)', s, (g, _, y) => g.node('LeakyRelu', [y], { alpha: 0.1 }));
    await convThen(t, 'Conv→Clip(0,6) inputs', s, (g, _, y) => g.node('Clip', [y, scalar(g, 0), scalar(g, 6)]), 11);
    await convThen(t, 'Conv→Clip(0,6) inputs', s, (g, _, y) => g.node('Clip', [y, scalar(g, 0), scalar(g, 6)]), 13);
    await convThen(t, 'Conv→Clip(0,6) attributes', s, (g, _, y) => g.node('Clip', [y], { min: { f: 0 }, max: { f: 6 } }), 6);
    await convThen(t, 'Conv→Clip(-0.5,0.7)', s, (g, _, y) => g.node('Clip', [y, scalar(g, -0.5), scalar(g, 0.7)]));
    await convThen(t, 'Conv→Clip(min 0.2 only)', s, (g, _, y) => g.node('Clip', [y, scalar(g, 0.2)]));
    await convThen(t, 'Conv→Clip(max 0.3 only)', s, (g, _, y) => g.node('Clip', [y, '', scalar(g, 0.3)]));
    await convThen(t, 'Conv→PRelu[C,1,1]', s, (g, rng, y) =>
      g.node('PRelu', [y, g.initializer('slope', rng.uniformArray(s.m, -0.5, 0.5), [s.m, 1, 1])]),
    );
    await convThen(t, 'Conv→BN', s, (g, rng, y) => [addBatchNorm(g, rng, y, s.m)]);
    await convThen(t, 'Conv→BN(eps 1e-3)→Relu', s, (g, rng, y) => g.node('Relu', [addBatchNorm(g, rng, y, s.m, { epsilon: 1e-3 })]));
    await convThen(t, 'Conv→BN→Clip(0,6)', s, (g, rng, y) => g.node('Clip', [addBatchNorm(g, rng, y, s.m), scalar(g, 0), scalar(g, 6)]));
  }
  // Fusion must not apply when the pre-activation value is used elsewhere.
  const s = specs[0]!;
  await convThen(t, 'Conv→Relu, conv output also a graph output', s, (g, _, y) => [y, ...g.node('Relu', [y])]);
  await convThen(t, 'Conv→Relu and Conv→Add', s, (g, _, y) => {
    const [r] = g.node('Relu', [y]);
    return g.node('Add', [r!, y]);
  });
  await convThen(t, 'Conv→BN, conv output also a graph output', s, (g, rng, y) => [y, addBatchNorm(g, rng, y, s.m)]);
  await convThen(t, 'Conv→Sigmoid', s, (g, _, y) => g.node('Sigmoid', [y]));
  await convThen(t, 'Conv→HardSwish', s, (g, _, y) => g.node('HardSwish', [y]), 14);
});

t.test('BatchNormalization', async (t) => {
  for (const [dims, attrs] of [
    [[2, 5, 7, 9], {}],
    [[1, 17, 3, 4], { epsilon: 1e-3 }],
    [[3, 17], {}],
    [[4, 64], { epsilon: 1e-3 }],
    [[2, 5, 11], {}],
  ] as [number[], Record<string, AttrValue>][]) {
    const c = dims[1]!;
    const label = `BatchNormalization x[${dims.join(',')}]${describeAttrs(attrs)}`;
    const rng = new SeededRandom(seedOf(label));
    const g = new OnnxGraphBuilder('bn');
    g.output(addBatchNorm(g, rng, g.input('x', dims), c, attrs));
    await expectSameAsOrt(t, g.toBytes(), { x: rand(rng, dims) }, { label });
    if (dims.length === 4) await expectSameAsOrt(t, g.toBytes({ opset: 9 }), { x: rand(rng, dims) }, { label: `${label} opset 9` });
  }
});

t.test('unary', async (t) => {
  const shapes = [[2, 3, 5, 7], [1, 37, 13], [1]];
  const cases: [string, Range, Record<string, AttrValue>, number?][] = [
    ['Relu', {}, {}],
    ['LeakyRelu', {}, {}],
    ['LeakyRelu', {}, { alpha: 0.1 }],
    ['Sigmoid', { low: -12, high: 12 }, {}],
    ['Sqrt', { low: 0, high: 9 }, {}],
    ['Exp', { low: -8, high: 8 }, {}],
    ['Tanh', { low: -6, high: 6 }, {}],
    ['Neg', {}, {}],
    ['Abs', {}, {}],
    ['Log', { low: 0.01, high: 20 }, {}],
    ['Erf', { low: -3, high: 3 }, {}],
    ['Ceil', { low: -5, high: 5 }, {}],
    ['Floor', { low: -5, high: 5 }, {}],
    ['Reciprocal', { low: 0.1, high: 3, signed: true }, {}],
    ['HardSigmoid', { low: -6, high: 6 }, {}],
    ['HardSigmoid', { low: -6, high: 6 }, { alpha: { f: 0.5 }, beta: { f: 0.25 } }],
    ['HardSwish', { low: -6, high: 6 }, {}, 14],
    ['Identity', {}, {}],
    ['Dropout', {}, {}],
    ['Dropout', {}, { ratio: 0.3 }, 11],
    ['Cast', {}, { to: 1 }],
    ['Softmax', {}, {}],
  ];
  for (const [op, range, attrs, opset] of cases) for (const dims of shapes) await op1(t, op, [X(dims, range)], attrs, { opset });

  for (const dims of [[2, 5, 7, 9], [1, 17, 3, 4]]) {
    const c = dims[1]!;
    await op1(t, 'PRelu', [X(dims), W([c, 1, 1], { low: -0.5, high: 0.5 })]);
    await op1(t, 'PRelu', [X(dims), F([0.2], [])]);
    await op1(t, 'PRelu', [X(dims), F([0.2], [1])]);
    await op1(t, 'PRelu', [X(dims), W([dims[3]!], { low: -0.5, high: 0.5 })]);
  }
  await op1(t, 'PRelu', [X([3, 17]), W([17], { low: -0.5, high: 0.5 })]);

  const clip = [[2, 3, 5, 7], [1, 37, 13]];
  for (const dims of clip) {
    for (const opset of [11, 13]) {
      await op1(t, 'Clip', [X(dims)], {}, { opset });
      await op1(t, 'Clip', [X(dims), F([-0.5], [])], {}, { opset });
      await op1(t, 'Clip', [X(dims), '', F([0.5], [])], {}, { opset });
      await op1(t, 'Clip', [X(dims), F([0], []), F([6], [])], {}, { opset });
    }
    await op1(t, 'Clip', [X(dims, { std: 4 })], { min: { f: 0 }, max: { f: 6 } }, { opset: 6 });
    await op1(t, 'Clip', [X(dims)], { min: { f: -0.25 } }, { opset: 6 });
    await op1(t, 'Clip', [X(dims)], {}, { opset: 6 });
  }
});

t.test('binary, with broadcasting', async (t) => {
  const pairs: [number[], number[]][] = [
    [[2, 3, 4, 5], [2, 3, 4, 5]],
    [[2, 3, 4, 5], []],
    [[2, 3, 4, 5], [1]],
    [[2, 3, 4, 5], [3, 1, 1]],
    [[2, 3, 4, 5], [5]],
    [[2, 1, 4, 1], [1, 3, 1, 5]],
    [[3, 1, 1], [2, 3, 4, 5]],
    [[], [2, 3, 4, 5]],
    [[1, 17, 13, 17], [17, 1, 1]],
    [[2, 33], [2, 33]],
    [[4, 1], [1, 9]],
  ];
  const ranges: Record<string, [Range, Range]> = {
    Add: [{}, {}],
    Sub: [{}, {}],
    Mul: [{}, {}],
    Div: [{}, { low: 0.25, high: 2, signed: true }],
    Max: [{}, {}],
    Min: [{}, {}],
    Pow: [{ low: 0.1, high: 3 }, { low: -2, high: 2 }],
  };
  for (const [op, [ra, rb]] of Object.entries(ranges)) {
    for (const [a, b] of pairs) {
      await op1(t, op, [X(a, ra), X(b, rb)]);
      if (count(b) < count(a)) await op1(t, op, [X(a, ra), W(b, rb)]);
      if (count(a) < count(b) || a.length === 1) await op1(t, op, [W(a, ra), X(b, rb)]);
    }
    await op1(t, op, [X([2, 3, 4, 5], ra), W([2, 3, 4, 5], rb)]);
  }
  // Both inputs the same value, and realistic sizes on more threads than cores.
  for (const op of Object.keys(ranges)) {
    const label = `${op}(x, x)`;
    const rng = new SeededRandom(seedOf(label));
    const g = new OnnxGraphBuilder('same');
    const x = g.input('x', [2, 3, 5, 7]);
    g.output(g.node(op, [x, x])[0]!);
    await expectSameAsOrt(t, g.toBytes(), { x: rand(rng, [2, 3, 5, 7], ranges[op]![0]) }, { label });
  }
  await op1(t, 'Add', [X([1, 64, 80, 80]), X([1, 64, 80, 80])], {}, { threads: 3 });
  await op1(t, 'Mul', [X([1, 64, 80, 80]), W([64, 1, 1])], {}, { threads: 3 });
  await op1(t, 'Sigmoid', [X([1, 16800, 2])], {}, { threads: 3 });
  // Exponents as torch exports them (x ** 2, x ** 0.5, x ** 3 on negative bases).
  await op1(t, 'Pow', [X([2, 3, 5, 7]), F([2], [])]);
  await op1(t, 'Pow', [X([2, 3, 5, 7]), F([3], [])]);
  await op1(t, 'Pow', [X([2, 3, 5, 7], { low: 0, high: 4 }), F([0.5], [])]);
  await op1(t, 'Pow', [X([2, 3, 5, 7], { low: 0.1, high: 4 }), F([-1], [])]);
  // Opset 7 (broadcasting) versions of the arithmetic ops.
  for (const op of ['Add', 'Sub', 'Mul', 'Div']) await op1(t, op, [X([2, 3, 4, 5]), X([3, 1, 1], { low: 0.5, high: 2 })], {}, { opset: 7 });
});

t.test('Concat', async (t) => {
  await op1(t, 'Concat', [X([2, 3, 4]), X([1, 3, 4])], { axis: 0 });
  await op1(t, 'Concat', [X([2, 3, 4]), X([1, 3, 4]), X([3, 3, 4])], { axis: 0 });
  await op1(t, 'Concat', [X([2, 3, 5, 5]), X([2, 7, 5, 5])], { axis: 1 });
  await op1(t, 'Concat', [X([2, 3, 5, 5]), X([2, 7, 5, 5]), X([2, 1, 5, 5])], { axis: 1 });
  await op1(t, 'Concat', [X([2, 3, 5, 5]), W([2, 7, 5, 5]), X([2, 1, 5, 5])], { axis: 1 });
  await op1(t, 'Concat', [X([2, 3, 4]), X([2, 3, 1])], { axis: -1 });
  await op1(t, 'Concat', [X([2, 3, 4]), X([2, 3, 1]), W([2, 3, 6])], { axis: -1 });
  await op1(t, 'Concat', [X([1, 16800, 4]), X([1, 4200, 4]), X([1, 1050, 4])], { axis: 1 });
  await op1(t, 'Concat', [X([2, 5]), X([2, 3])], { axis: 1 });
  await op1(t, 'Concat', [X([2, 5, 3, 3]), X([2, 5, 3, 3])], { axis: -3 }, { opset: 11 });
});

t.test('Resize and Upsample', async (t) => {
  const nearest: Record<string, AttrValue>[] = [
    { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' },
    { mode: 'nearest', coordinate_transformation_mode: 'half_pixel', nearest_mode: 'round_prefer_floor' },
    { mode: 'nearest', coordinate_transformation_mode: 'half_pixel', nearest_mode: 'round_prefer_ceil' },
    { mode: 'nearest', coordinate_transformation_mode: 'align_corners', nearest_mode: 'round_prefer_floor' },
    { mode: 'nearest' },
  ];
  const linear: Record<string, AttrValue>[] = ['half_pixel', 'align_corners', 'pytorch_half_pixel', 'asymmetric'].map((c) => ({
    mode: 'linear',
    coordinate_transformation_mode: c,
  }));
  const scales = [
    [1, 1, 2, 2],
    [1, 1, 0.5, 0.5],
    [1, 1, 3, 3],
    [1, 1, 2, 3],
  ];
  for (const attrs of [...nearest, ...linear]) {
    for (const dims of [[1, 3, 5, 6], [2, 2, 13, 17]]) {
      for (const s of scales) await op1(t, 'Resize', [X(dims), '', F(s)], attrs);
      await op1(t, 'Resize', [X(dims), '', '', I([dims[0]!, dims[1]!, 7, 11])], attrs);
    }
    await op1(t, 'Resize', [X([1, 3, 5, 6]), '', '', I([1, 3, 1, 11])], attrs);
    await op1(t, 'Resize', [X([1, 3, 20, 20]), '', '', I([1, 3, 40, 40])], attrs);
    // Sizes whose float scale out/in is inexact while some source coordinates are exact ties
    // (6 → 7: half_pixel gives 2.5 at o = 3; 6 → 4: asymmetric gives 3 at o = 2).
    await op1(t, 'Resize', [X([1, 3, 6, 6]), '', '', I([1, 3, 7, 7])], attrs);
    await op1(t, 'Resize', [X([1, 3, 6, 6]), '', '', I([1, 3, 4, 4])], attrs);
    // Opset 11: roi and scales are required inputs (empty when unused).
    await op1(t, 'Resize', [X([1, 3, 5, 6]), F([], [0]), F([1, 1, 2, 2])], attrs, { opset: 11 });
    await op1(t, 'Resize', [X([1, 3, 5, 6]), F([], [0]), F([], [0]), I([1, 3, 7, 11])], attrs, { opset: 11 });
    // Opset 18 (antialias, axes, keep_aspect_ratio_policy added; defaults unchanged).
    await op1(t, 'Resize', [X([1, 3, 5, 6]), '', F([1, 1, 2, 2])], attrs, { opset: 18 });
    await op1(t, 'Resize', [X([1, 3, 5, 6]), '', '', I([1, 3, 7, 11])], attrs, { opset: 18 });
  }
  // Realistic: the FPN upsampling of RetinaFace (torch nearest, 2×) on more threads than cores.
  await op1(t, 'Resize', [X([1, 64, 40, 40]), '', F([1, 1, 2, 2])], nearest[0]!, { threads: 3 });
  await op1(t, 'Resize', [X([1, 64, 40, 40]), '', '', I([1, 64, 80, 80])], linear[0]!, { threads: 3 });
  // Upsample (opset 9: scales as an input; opset 7: as an attribute).
  await op1(t, 'Upsample', [X([1, 3, 5, 6]), F([1, 1, 2, 2])], { mode: 'nearest' }, { opset: 9 });
  await op1(t, 'Upsample', [X([2, 2, 7, 5]), F([1, 1, 2, 3])], { mode: 'nearest' }, { opset: 9 });
  await op1(t, 'Upsample', [X([2, 2, 7, 5]), F([1, 1, 2, 2])], {}, { opset: 9 });
  await op1(t, 'Upsample', [X([2, 2, 7, 5]), F([1, 1, 2, 2])], { mode: 'linear' }, { opset: 9 });
  await op1(t, 'Upsample', [X([1, 3, 5, 6])], { mode: 'nearest', scales: { floats: [1, 1, 2, 2] } }, { opset: 7 });
});

t.test('pooling', async (t) => {
  const pools: Record<string, AttrValue>[] = [
    { kernel_shape: [2, 2], strides: [2, 2] },
    { kernel_shape: [2, 2], strides: [1, 1] },
    { kernel_shape: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1] },
    { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
    { kernel_shape: [3, 3], strides: [2, 2] },
    { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 },
    { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 },
    { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 },
    { kernel_shape: [3, 3], strides: [2, 2], pads: [0, 0, 1, 1] },
    { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' },
    { kernel_shape: [2, 2], strides: [2, 2], auto_pad: 'SAME_LOWER' },
    { kernel_shape: [3, 3] },
    { kernel_shape: [3, 2], strides: [1, 2], pads: [1, 0, 1, 1] },
  ];
  for (const dims of [[2, 3, 13, 17], [1, 5, 8, 8]]) {
    for (const attrs of pools) {
      await op1(t, 'MaxPool', [X(dims)], attrs);
      const padded = 'pads' in attrs || 'auto_pad' in attrs;
      for (const cip of padded ? [0, 1] : [0]) await op1(t, 'AveragePool', [X(dims)], { ...attrs, count_include_pad: cip });
    }
  }
  await op1(t, 'MaxPool', [X([1, 16, 40, 40])], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  await op1(t, 'MaxPool', [X([1, 3, 13, 17])], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }, { opset: 11 });
  await op1(t, 'AveragePool', [X([1, 3, 13, 17])], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, { opset: 11 });
  for (const dims of [[2, 3, 13, 17], [1, 64, 7, 7], [3, 17, 1, 1], [1, 1024, 2, 3]]) {
    await op1(t, 'GlobalAveragePool', [X(dims)]);
    await op1(t, 'GlobalMaxPool', [X(dims)]);
  }
});

t.test('Gemm and MatMul', async (t) => {
  const gemm = async (m: number, k: number, n: number, attrs: Record<string, AttrValue>, c: number[] | null, bInput = false): Promise<void> => {
    const a = attrs.transA ? [k, m] : [m, k];
    const b = attrs.transB ? [n, k] : [k, n];
    const args: Arg[] = [X(a), bInput ? X(b, { std: 1 / Math.sqrt(k) }) : W(b, { std: 1 / Math.sqrt(k) })];
    if (c) args.push(W(c));
    await op1(t, 'Gemm', args, attrs, dotTolerance(k));
  };
  await gemm(1, 1024, 128, { transB: 1 }, [128]);
  await gemm(4, 1024, 128, { transB: 1 }, [128]);
  await gemm(5, 7, 3, {}, [3]);
  await gemm(5, 7, 3, {}, [5, 3]);
  await gemm(5, 7, 3, {}, [1, 3]);
  await gemm(5, 7, 3, {}, [5, 1]);
  await gemm(5, 7, 3, {}, []);
  await gemm(5, 7, 3, {}, null);
  await gemm(5, 7, 3, { transA: 1 }, [3]);
  await gemm(5, 7, 3, { transB: 1 }, [3]);
  await gemm(5, 7, 3, { transA: 1, transB: 1 }, [5, 3]);
  await gemm(5, 7, 3, { alpha: 0.5, beta: { f: 2 } }, [3]);
  await gemm(5, 7, 3, { alpha: { f: 1.5 }, beta: 0.25, transB: 1 }, [5, 3]);
  await gemm(5, 7, 3, { transB: 1 }, [3], true);
  await gemm(5, 7, 3, {}, [5, 3], true);
  await gemm(33, 65, 17, {}, [17]);
  await gemm(33, 65, 17, { transB: 1 }, [17]);
  await gemm(33, 65, 17, { transA: 1, transB: 1, alpha: 0.5, beta: 0.5 }, [33, 17]);
  await gemm(33, 65, 17, { transA: 1 }, [1, 17], true);
  await gemm(2, 512, 10, { transB: 1 }, [10], true);
  await op1(t, 'Gemm', [X([5, 7]), W([7, 3]), W([3])], { transA: 0 }, { opset: 11 });
  await op1(t, 'Gemm', [X([5, 7]), W([7, 3]), W([3])], {}, { opset: 9 });

  const matmul = async (a: number[], b: number[], bInit = false): Promise<void> => {
    const k = a[a.length - 1]!;
    await op1(t, 'MatMul', [X(a), bInit ? W(b, { std: 1 / Math.sqrt(k) }) : X(b, { std: 1 / Math.sqrt(k) })], {}, dotTolerance(k));
  };
  await matmul([5, 7], [7, 3]);
  await matmul([5, 7], [7, 3], true);
  await matmul([2, 5, 7], [7, 3], true);
  await matmul([2, 5, 7], [7, 3]);
  await matmul([2, 5, 7], [2, 7, 3]);
  await matmul([2, 5, 7], [1, 7, 3]);
  await matmul([3, 1, 5, 7], [2, 7, 4]);
  await matmul([7], [7, 3]);
  await matmul([7], [2, 7, 3]);
  await matmul([5, 7], [7]);
  await matmul([1, 33, 65], [65, 17], true);
  await matmul([4, 16], [16, 64], true);
  await matmul([1, 1, 512], [512, 128], true);
  await matmul([2, 4, 9, 16], [2, 4, 16, 9]);
});

t.test('shape ops', async (t) => {
  const x4 = [2, 3, 4, 5];
  for (const axis of [0, 1, 2, 3, -1]) await op1(t, 'Flatten', [X(x4)], { axis });
  await op1(t, 'Flatten', [X(x4)]);
  await op1(t, 'Flatten', [X(x4)], { axis: 2 }, { opset: 11 });

  for (const shape of [[0, -1], [0, 0, -1], [-1, 5], [2, 60], [0, 3, 20], [-1], [1, 2, 3, 4, 5], [0, 0, 2, -1]])
    await op1(t, 'Reshape', [X(x4), I(shape)]);
  await op1(t, 'Reshape', [X([3, 4]), I([2, -1, 2])], {}, { opset: 5 });

  await op1(t, 'Transpose', [X(x4)], { perm: [0, 2, 3, 1] });
  await op1(t, 'Transpose', [X(x4)], { perm: [0, 3, 1, 2] });
  await op1(t, 'Transpose', [X(x4)], { perm: [0, 2, 1, 3] });
  await op1(t, 'Transpose', [X(x4)], { perm: [3, 1, 2, 0] });
  await op1(t, 'Transpose', [X([5, 7])], { perm: [1, 0] });
  await op1(t, 'Transpose', [X([33, 65])], { perm: [1, 0] });
  await op1(t, 'Transpose', [X([2, 3, 4])]);
  await op1(t, 'Transpose', [X(x4)]);
  await op1(t, 'Transpose', [X([1, 16, 20, 20])], { perm: [0, 2, 3, 1] });

  const s = [2, 1, 3, 1];
  await op1(t, 'Squeeze', [X(s)], { axes: [1] }, { opset: 11 });
  await op1(t, 'Squeeze', [X(s)], { axes: [1, -1] }, { opset: 11 });
  await op1(t, 'Squeeze', [X(s)], {}, { opset: 11 });
  await op1(t, 'Squeeze', [X(s), I([1, 3])]);
  await op1(t, 'Squeeze', [X(s), I([-1])]);
  await op1(t, 'Squeeze', [X(s)]);
  await op1(t, 'Unsqueeze', [X([2, 3])], { axes: [0] }, { opset: 11 });
  await op1(t, 'Unsqueeze', [X([2, 3])], { axes: [1, 3] }, { opset: 11 });
  await op1(t, 'Unsqueeze', [X([2, 3])], { axes: [-1] }, { opset: 11 });
  await op1(t, 'Unsqueeze', [X([2, 3]), I([-1])]);
  await op1(t, 'Unsqueeze', [X([2, 3]), I([0, 2])]);
  await op1(t, 'Unsqueeze', [X([2, 3]), I([3, 1])]);

  await op1(t, 'Identity', [X(x4)]);
  await op1(t, 'Dropout', [X(x4)], {}, { opset: 13, outputs: 1 });

  for (const [shape, target] of [
    [[3, 1, 1], [2, 3, 4, 5]],
    [[1, 5], [3, 5]],
    [[2, 1, 4], [3, 1]],
    [[2, 3], [2, 3]],
    [[4], [2, 3, 1]],
  ])
    await op1(t, 'Expand', [X(shape!), I(target!)]);
});

t.test('Softmax, LogSoftmax', async (t) => {
  for (const op of ['Softmax', 'LogSoftmax']) {
    for (const axis of [-1, 1, 2, 0]) await op1(t, op, [X([2, 3, 4, 5], { std: 5 })], { axis });
    await op1(t, op, [X([3, 10], { std: 20 })]);
    await op1(t, op, [X([1, 16800, 2], { std: 3 })], { axis: 2 });
    await op1(t, op, [X([2, 1000], { std: 3 })], { axis: -1 });
    // Opset 11: the input is coerced to 2-D at `axis` (softmax over all of C·H·W for axis 1).
    await op1(t, op, [X([2, 3, 4, 5], { std: 2 })], { axis: 1 }, { opset: 11 });
    await op1(t, op, [X([2, 3, 4, 5], { std: 2 })], { axis: 2 }, { opset: 11 });
    await op1(t, op, [X([2, 3, 4, 5], { std: 2 })], {}, { opset: 11 });
    await op1(t, op, [X([3, 10], { std: 2 })], {}, { opset: 11 });
    await op1(t, op, [X([1, 20, 2], { std: 2 })], { axis: -1 }, { opset: 11 });
  }
});

t.test('Pad', async (t) => {
  const x = [1, 2, 5, 6];
  for (const opset of [11, 13]) {
    await op1(t, 'Pad', [X(x), I([0, 0, 1, 2, 0, 0, 2, 1]), F([0.5], [])], { mode: 'constant' }, { opset });
    await op1(t, 'Pad', [X(x), I([0, 0, 1, 2, 0, 0, 2, 1])], {}, { opset });
    await op1(t, 'Pad', [X([2, 3, 4, 5]), I([0, 1, 1, 0, 1, 0, 1, 2])], {}, { opset });
    await op1(t, 'Pad', [X(x), I([0, 0, 2, 1, 0, 0, 1, 3])], { mode: 'reflect' }, { opset });
    await op1(t, 'Pad', [X(x), I([0, 0, 2, 1, 0, 0, 1, 3])], { mode: 'edge' }, { opset });
    await op1(t, 'Pad', [X(x), I([0, 0, -1, 1, 0, 0, 1, -2])], { mode: 'constant' }, { opset });
  }
  await op1(t, 'Pad', [X([3, 7]), I([1, 2, 0, 3])], { mode: 'reflect' });
  await op1(t, 'Pad', [X([1, 16, 13, 17]), I([0, 0, 0, 0, 0, 0, 1, 1])]);
  // Opset 2: pads and value are attributes.
  await op1(t, 'Pad', [X(x)], { pads: [0, 0, 1, 2, 0, 0, 2, 1], value: { f: 1.5 } }, { opset: 2 });
  await op1(t, 'Pad', [X(x)], { pads: [0, 0, 1, 2, 0, 0, 2, 1] }, { opset: 2 });
  await op1(t, 'Pad', [X(x)], { mode: 'reflect', pads: [0, 0, 2, 1, 0, 0, 1, 3] }, { opset: 2 });
  await op1(t, 'Pad', [X(x)], { mode: 'edge', pads: [0, 0, 2, 1, 0, 0, 1, 3] }, { opset: 2 });
  // Opset 18: optional axes input.
  await op1(t, 'Pad', [X(x), I([1, 2, 2, 1]), F([0.25], []), I([2, 3])], {}, { opset: 18 });
  await op1(t, 'Pad', [X(x), I([0, 0, 1, 2, 0, 0, 2, 1])], { mode: 'edge' }, { opset: 18 });
});

t.test('reductions', async (t) => {
  const x = [2, 3, 4, 5];
  for (const keepdims of [0, 1]) {
    // ReduceSum: axes is an input from opset 13.
    for (const axes of [[1], [2, 3], [-1], [0, 1, 2, 3]]) await op1(t, 'ReduceSum', [X(x), I(axes)], { keepdims });
    await op1(t, 'ReduceSum', [X(x)], { keepdims });
    await op1(t, 'ReduceSum', [X(x)], { keepdims, axes: [1] }, { opset: 11 });
    // The others take axes as an attribute until opset 18.
    for (const op of ['ReduceL2', 'ReduceMean', 'ReduceMax', 'ReduceSumSquare']) {
      for (const axes of [[1], [2, 3], [-1]]) await op1(t, op, [X(x)], { keepdims, axes });
      await op1(t, op, [X(x)], { keepdims });
      await op1(t, op, [X(x), I([1])], { keepdims }, { opset: 18 });
      await op1(t, op, [X(x), I([2, 3])], { keepdims }, { opset: 18 });
    }
  }
  await op1(t, 'ReduceL2', [X([4, 512])], { axes: [1] });
  await op1(t, 'ReduceMean', [X([1, 64, 20, 20])], { axes: [2, 3] });
  await op1(t, 'ReduceMax', [X([1, 16800, 2])], { axes: [-1], keepdims: 0 });
  await op1(t, 'ReduceSum', [X([1, 512]), I([1])]);
  await op1(t, 'ReduceSum', [X([3, 4])], {}, { opset: 18 });
});

t.test('Slice and Gather', async (t) => {
  const x = [2, 5, 7, 9];
  const slice = async (starts: number[] | BigInt64Array, ends: number[] | BigInt64Array, axes?: number[], steps?: number[], dims = x): Promise<void> => {
    const i64 = (v: number[] | BigInt64Array): Arg => (v instanceof BigInt64Array ? { kind: 'init', data: v, dims: [v.length] } : I(v));
    const args: Arg[] = [X(dims), i64(starts), i64(ends)];
    if (axes) args.push(I(axes));
    else if (steps) args.push('');
    if (steps) args.push(I(steps));
    await op1(t, 'Slice', args);
  };
  await slice([1], [4], [1]);
  await slice([0, 1], [2, -1], [2, 3]);
  await slice([0], [9], [3], [2]);
  await slice([1], [8], [-1], [3]);
  await slice([-1], [-1000], [2], [-1]);
  await slice([5], [0], [2], [-2]);
  await slice([-3], BigInt64Array.from([INT64_MAX]), [-1]);
  await slice([1], BigInt64Array.from([INT64_MAX]), [1]);
  await slice([0, 1], [1, 4]);
  await slice([0, 1, 1], [2, 4, 6], [0, 1, 2], [1, 2, 2]);
  await slice([-4, 100], [-1, -100], [2, 3], [1, -3]);
  await slice([2], [2], [3]);
  await slice([0], [1], [-1], undefined, [1, 16800, 2]);
  await op1(t, 'Slice', [X(x), I([1]), I([4]), I([1])], {}, { opset: 11 });
  await op1(t, 'Slice', [X(x)], { starts: [1, 0], ends: [4, -1], axes: [1, 3] }, { opset: 9 });

  const d = [5, 4, 3];
  for (const [axis, idx, dims] of [
    [0, [2], []],
    [0, [-1], []],
    [0, [0, 4, 1], [3]],
    [1, [3], []],
    [1, [-1, 0, 2], [3]],
    [2, [1, -3], [2]],
    [0, [0, 1, 2, 3], [2, 2]],
    [-1, [2], []],
  ] as [number, number[], number[]][]) {
    await op1(t, 'Gather', [X(d), I(idx, dims)], { axis });
  }
  await op1(t, 'Gather', [W([10, 6]), I([3, 0, 9], [3])], { axis: 0 });
  await op1(t, 'Gather', [X([2, 3, 4, 5]), I([1], [])], { axis: 1 }, { opset: 11 });
});

t.test('Shape → Gather → Unsqueeze → Concat → Reshape, dynamic batch', async (t) => {
  for (const opset of [11, 13]) {
    const g = new OnnxGraphBuilder('view');
    const x = g.input('x', ['N', 8, 4, 6]);
    const [shape] = g.node('Shape', [x]);
    const [n] = g.node('Gather', [shape!, g.initializer('zero', int64Array([0]), [])], { axis: 0 });
    const [un] = opset >= 13 ? g.node('Unsqueeze', [n!, g.initializer('ax0', int64Array([0]), [1])]) : g.node('Unsqueeze', [n!], { axes: [0] });
    const [cat] = g.node('Concat', [un!, g.initializer('minus1', int64Array([-1]), [1]), g.initializer('k', int64Array([4]), [1])], { axis: 0 });
    const [view] = g.node('Reshape', [x, cat!]);
    const [soft] = g.node('Softmax', [view!], { axis: -1 });
    // Flatten the torch way: Shape → Gather(0) → Unsqueeze → Concat([n], [-1]) → Reshape.
    const [cat2] = g.node('Concat', [un!, g.initializer('minus1b', int64Array([-1]), [1])], { axis: 0 });
    const [flat] = g.node('Reshape', [x, cat2!]);
    const [fc] = g.node('Gemm', [flat!, g.initializer('fc_w', new SeededRandom(5).normalArray(10 * 192, 0, 1 / Math.sqrt(192)), [10, 192])], { transB: 1 });
    // ConstantOfShape on a computed shape, Constant, Cast.
    const [ones] = g.node('ConstantOfShape', [shape!], { value: { tensor: { data: new Float32Array([0.5]), dims: [1] } } });
    const [c] = g.node('Constant', [], { value: { tensor: { data: new Float32Array([2]), dims: [] } } });
    const [scaled] = g.node('Mul', [g.node('Add', [x, ones!])[0]!, c!]);
    const [nf] = g.node('Cast', [n!], { to: 1 });
    const [byN] = g.node('Mul', [scaled!, nf!]);
    for (const out of [soft!, fc!, byN!]) g.output(out);
    const rng = new SeededRandom(seedOf(`view opset ${opset}`));
    const feeds = [1, 4, 1].map((b) => ({ x: rand(rng, [b, 8, 4, 6]) }));
    await expectSameAsOrt(t, g.toBytes({ opset }), feeds, { label: `view(N, -1, 4) chain opset ${opset}`, ...dotTolerance(192) });
  }
});

t.test('tiny network: conv-bn-relu ×3 with a residual Add, two input sizes through one model', async (t) => {
  const rng = new SeededRandom(seedOf('tiny network'));
  const g = new OnnxGraphBuilder('tiny');
  const x = g.input('x', ['N', 3, 'H', 'W']);
  const block = (input: string, c: number, m: number, stride: number, relu: boolean): string => {
    const { y } = addConv(g, rng, input, { c, m, k: [3, 3], strides: [stride, stride], pads: [1, 1, 1, 1], bias: false });
    const bn = addBatchNorm(g, rng, y, m);
    return relu ? g.node('Relu', [bn])[0]! : bn;
  };
  const a = block(x, 3, 16, 2, true);
  const b = block(a, 16, 16, 1, true);
  const c = block(b, 16, 16, 1, false);
  const [res] = g.node('Relu', [g.node('Add', [a, c])[0]!]);
  const [pooled] = g.node('GlobalAveragePool', [res!]);
  const [flat] = g.node('Flatten', [pooled!]);
  const [logits] = g.node('Gemm', [flat!, g.initializer('fc_w', rng.normalArray(10 * 16, 0, 0.25), [10, 16]), g.initializer('fc_b', rng.normalArray(10), [10])], { transB: 1 });
  const [prob] = g.node('Softmax', [logits!], { axis: 1 });
  g.output(res!);
  g.output(prob!);
  const feeds = [
    { x: rand(rng, [1, 3, 32, 32]) },
    { x: rand(rng, [2, 3, 45, 61]) },
    { x: rand(rng, [1, 3, 32, 32]) },
  ];
  await expectSameAsOrt(t, g.toBytes(), feeds, { label: 'conv-bn-relu×3 + residual', ...dotTolerance(16 * 9) });
});

// The engine keeps values with whole channel blocks in NCHW16c between ops that can read it (convs,
// elementwise ops, channel concats, resizes, pools) and reorders where they meet ops that cannot
// (reshapes, heads with few channels, per-channel constants, graph outputs). Every such meeting, in
// both directions, against onnxruntime.
t.test('NCHW16c chains: blocked values through every op that keeps them, and every reorder', async (t) => {
  const rng = new SeededRandom(seedOf('NCHW16c chains'));
  const g = new OnnxGraphBuilder('blocked');
  const x = g.input('x', ['N', 16, 'H', 'W']);
  const conv = (input: string, s: Omit<ConvSpec, 'n' | 'h' | 'w'>): string => addConv(g, rng, input, s).y;
  const one = (op: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string => g.node(op, inputs, attrs)[0]!;
  const scalar = (v: number): string => g.initializer(g.uniqueName('s'), new Float32Array([v]), []);
  const a = one('Relu', [conv(x, { c: 16, m: 32, k: [3, 3], pads: [1, 1, 1, 1] })]);     // NCHW in, blocked out
  const b = one('LeakyRelu', [conv(a, { c: 32, m: 32, k: [3, 3], pads: [1, 1, 1, 1], group: 32 })], { alpha: 0.1 });
  const c = conv(b, { c: 32, m: 32, k: [1, 1] });
  const d = one('Add', [a, c]);                                                          // blocked + blocked
  const e = one('Sigmoid', [one('Mul', [d, scalar(0.5)])]);                              // scalar constant
  const cat = one('Concat', [e, a], { axis: 1 });                                        // 64 channels
  const up = one('Resize', [cat, '', g.initializer('scales', new Float32Array([1, 1, 2, 2]), [4])], {
    mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor',
  });
  const pooled = one('MaxPool', [up], { kernel_shape: [2, 2], strides: [2, 2] });
  const avg = one('AveragePool', [pooled], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  const k = conv(avg, { c: 64, m: 16, k: [3, 3], strides: [2, 2] });
  const prelu = one('PRelu', [conv(k, { c: 16, m: 32, k: [3, 3], pads: [1, 1, 1, 1] }),
    g.initializer('slope', rng.uniformArray(32, -0.5, 0.5), [32, 1, 1])]);              // fused PRelu, blocked
  g.output(d);                                                                           // read later, and an output
  g.output(one('Add', [c, g.initializer('per_channel', rng.normalArray(32), [1, 32, 1, 1])])); // → NCHW
  g.output(conv(k, { c: 16, m: 4, k: [1, 1] }));                                         // head: few channels → NCHW
  g.output(one('Flatten', [k]));                                                         // reshape → NCHW
  g.output(one('GlobalAveragePool', [prelu]));                                           // 1×1 output
  g.output(one('Relu', [conv(prelu, { c: 32, m: 16, k: [3, 3] })]));                   // small maps
  g.output(one('Resize', [k, '', '', g.initializer('sizes', int64Array([2, 16, 9, 11]), [4])], {
    mode: 'linear', coordinate_transformation_mode: 'half_pixel',
  }));
  g.output(one('Concat', [e, g.initializer('c_w', rng.normalArray(2 * 32 * 12 * 14), [2, 32, 12, 14])], { axis: 1 })); // constant → NCHW
  const feeds = [{ x: rand(rng, [2, 16, 12, 14]) }, { x: rand(rng, [2, 16, 12, 14]) }];
  for (const threads of [1, 2, 3]) {
    await expectSameAsOrt(t, g.toBytes(), feeds, { label: `blocked chain, ${threads} threads`, threads, ...dotTolerance(64 * 9) });
  }
});

t.test('NCHW16c and NCHW give the same network outputs (FACESIGHT_LAYOUT=nchw turns the layout off)', async (t) => {
  const g = new OnnxGraphBuilder('layouts');
  const rng = new SeededRandom(seedOf('layouts'));
  const x = g.input('x', [1, 3, 40, 48]);
  const a = g.node('Relu', [addConv(g, rng, x, { c: 3, m: 32, k: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }).y])[0]!;
  const b = addConv(g, rng, a, { c: 32, m: 32, k: [3, 3], pads: [1, 1, 1, 1], group: 32 }).y;
  g.output(addConv(g, rng, b, { c: 32, m: 64, k: [1, 1] }).y);  // a separable pair: fused, or two convs in NCHW
  const bytes = g.toBytes();
  const feeds = { x: rand(rng, [1, 3, 40, 48]) };
  const blocked = await loadModel(bytes, { threads: 2 });
  const saved = process.env.FACESIGHT_LAYOUT;
  process.env.FACESIGHT_LAYOUT = 'nchw';
  let nchw;
  try {
    nchw = await loadModel(bytes, { threads: 2 });
  } finally {
    if (saved === undefined) delete process.env.FACESIGHT_LAYOUT;
    else process.env.FACESIGHT_LAYOUT = saved;
  }
  const [p, q] = [await blocked.run(feeds), await nchw.run(feeds)];
  const out = Object.keys(p)[0]!;
  let worst = 0;
  for (let i = 0; i < p[out]!.data.length; i++) worst = Math.max(worst, Math.abs(p[out]!.data[i]! - q[out]!.data[i]!));
  // Both are float32 sums of the same 288 products in different orders.
  t.ok(worst < 1e-4, `largest difference ${worst.toExponential(2)} < 1e-4`);
  blocked.dispose();
  nchw.dispose();
  await expectSameAsOrt(t, bytes, feeds, { label: 'layouts network (blocked)', ...dotTolerance(288) });
});

// A depthwise conv read only by a 1×1 conv is fused into one step (SeparableConv) that computes the
// depthwise output band by band; pairs that do not qualify run as two convs. Both against onnxruntime.
t.test('separable convs: depthwise → pointwise, fused and not', async (t) => {
  interface Pair {
    n: number; c: number; h: number; w: number; m: number; k: number; stride: number;
    dwAct?: string; pwAct?: string; pwStride?: number; extraReader?: boolean;
  }
  const pairs: Pair[] = [
    { n: 1, c: 32, h: 40, w: 44, m: 64, k: 3, stride: 1, dwAct: 'Relu', pwAct: 'Relu' },
    { n: 3, c: 64, h: 23, w: 19, m: 128, k: 3, stride: 2, dwAct: 'Clip', pwAct: 'LeakyRelu' },
    { n: 2, c: 16, h: 9, w: 7, m: 32, k: 5, stride: 1, dwAct: 'PRelu', pwAct: 'PRelu' },
    { n: 1, c: 128, h: 10, w: 10, m: 128, k: 3, stride: 1 },                    // FaceNet's 10×10 blocks
    { n: 1, c: 256, h: 6, w: 6, m: 256, k: 3, stride: 1, dwAct: 'Relu' },       // pointwise weights > 64 KiB: not fused
    { n: 1, c: 32, h: 12, w: 12, m: 32, k: 3, stride: 1, pwStride: 2 },         // strided pointwise: not fused
    { n: 1, c: 32, h: 12, w: 12, m: 32, k: 3, stride: 1, extraReader: true },   // depthwise output read twice: not fused
  ];
  for (const p of pairs) {
    const label = `separable ${JSON.stringify(p)}`;
    const rng = new SeededRandom(seedOf(label));
    const g = new OnnxGraphBuilder('separable');
    const x = g.input('x', [p.n, p.c, p.h, p.w]);
    const act = (y: string, kind: string | undefined, channels: number): string => {
      if (!kind) return y;
      if (kind === 'Clip') return g.node('Clip', [y, g.initializer(g.uniqueName('lo'), new Float32Array([0]), []), g.initializer(g.uniqueName('hi'), new Float32Array([6]), [])])[0]!;
      if (kind === 'LeakyRelu') return g.node('LeakyRelu', [y], { alpha: 0.1 })[0]!;
      if (kind === 'PRelu') return g.node('PRelu', [y, g.initializer(g.uniqueName('slope'), rng.uniformArray(channels, -0.5, 0.5), [channels, 1, 1])])[0]!;
      return g.node(kind, [y])[0]!;
    };
    const pad = Math.floor(p.k / 2);
    const dw = act(addConv(g, rng, x, { c: p.c, m: p.c, k: [p.k, p.k], strides: [p.stride, p.stride], pads: [pad, pad, pad, pad], group: p.c }).y, p.dwAct, p.c);
    const pw = act(addConv(g, rng, dw, { c: p.c, m: p.m, k: [1, 1], strides: p.pwStride ? [p.pwStride, p.pwStride] : undefined }).y, p.pwAct, p.m);
    g.output(pw);
    if (p.extraReader) g.output(g.node('Sigmoid', [dw])[0]!);
    await expectSameAsOrt(t, g.toBytes(), { x: rand(rng, [p.n, p.c, p.h, p.w]) }, { ...dotTolerance(p.c + p.k * p.k), label });
  }
});

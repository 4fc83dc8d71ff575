#!/usr/bin/env node
// `npm run bench:engine`: the same ONNX networks on facesight's native engine and on onnxruntime-node,
// in one process, interleaved in blocks of runs, same thread count. Prints median latency per row and the
// ratio facesight / onnxruntime (below 1 = facesight faster). `--json` prints the rows as JSON;
// `--threads N` and `--rounds N` override the defaults.
import os from 'node:os';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const facesight = require('../dist/index.js');
const { buildRetinaFaceMnet025, buildFaceNetMobileNetV1, loadModel } = facesight;
const { SeededRandom } = require('../dist/onnx/random.js');

const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const k = argv.indexOf(`--${name}`);
  return k >= 0 ? Number(argv[k + 1]) : fallback;
};
const json = argv.includes('--json');
const threads = option('threads', os.availableParallelism?.() ?? os.cpus().length);
const roundsScale = option('rounds', 1);

let ort;
try {
  ort = require('onnxruntime-node');
} catch {
  console.error('onnxruntime-node is a devDependency: run `npm install` in the repository to benchmark against it.');
  process.exit(1);
}

const cases = [
  { name: 'RetinaFace-mnet0.25', build: buildRetinaFaceMnet025, input: 'input0', dims: [1, 3, 640, 640], rounds: 30 },
  { name: 'RetinaFace-mnet0.25', build: buildRetinaFaceMnet025, input: 'input0', dims: [8, 3, 640, 640], rounds: 20 },
  { name: 'FaceNet-MobileNetV1', build: buildFaceNetMobileNetV1, input: 'input', dims: [1, 3, 160, 160], rounds: 60 },
  { name: 'FaceNet-MobileNetV1', build: buildFaceNetMobileNetV1, input: 'input', dims: [32, 3, 160, 160], rounds: 20 },
];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const rows = [];
for (const c of cases) {
  const bytes = c.build();
  const native = await loadModel(bytes, { threads });
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential',
  });
  const count = c.dims.reduce((a, b) => a * b, 1);
  const data = new SeededRandom(7).uniformArray(count, -1, 1);
  const runNative = () => native.run({ [c.input]: { data, dims: c.dims } });
  const runOrt = () => session.run({ [c.input]: new ort.Tensor('float32', data, c.dims) });
  // Warm-up, the same for both: plans, thread pools, and the steady state of output buffers. facesight
  // hands its output buffers to JS without a copy and reuses them once V8 has collected them; until
  // the first collections (every ~64 MiB of outputs) each run's outputs are fresh pages, paid for in
  // page faults (~2,100 per RetinaFace batch-8 run here).
  for (let k = 0; k < 10; k++) { await runNative(); await runOrt(); }
  // Interleaved in short blocks, alternating which engine goes first. Both engines keep worker threads
  // spinning for a while after a run; on a 2-core machine that would tax whichever runs next, so each
  // block starts after a short pause and its first run is not timed.
  const timesNative = [], timesOrt = [];
  const blocks = Math.max(2, Math.round(c.rounds * roundsScale / 4));
  const block = async (fn, onRun) => {
    await new Promise((resolve) => setTimeout(resolve, 30));  // let the other engine's threads go idle
    await fn();
    for (let r = 0; r < 4; r++) {
      const t0 = process.hrtime.bigint();
      await fn();
      onRun(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  for (let k = 0; k < blocks; k++) {
    const order = k % 2 ? [[runNative, timesNative], [runOrt, timesOrt]] : [[runOrt, timesOrt], [runNative, timesNative]];
    for (const [fn, times] of order) await block(fn, (ms) => times.push(ms));
  }
  // Event-loop stalls, in blocks of their own: a 1 ms timer measures how long the loop goes without
  // running it. facesight computes on worker threads; onnxruntime-node runs the inference on the main
  // thread (inside a setImmediate), blocking the loop for the whole run. The timer is kept out of the
  // timed blocks above because it perturbs only one side: its wake-ups take CPU time from facesight's
  // compute threads (1–4 % here, on 2 cores), while during an onnxruntime run it cannot fire at all.
  const stallNative = { max: 0 }, stallOrt = { max: 0 };
  for (const [fn, stall] of [[runNative, stallNative], [runOrt, stallOrt]]) {
    let last = process.hrtime.bigint();
    const ticker = setInterval(() => {
      const now = process.hrtime.bigint();
      stall.max = Math.max(stall.max, Number(now - last) / 1e6);
      last = now;
    }, 1);
    await block(fn, () => {});
    clearInterval(ticker);
  }
  native.dispose();
  await session.release?.();
  const row = {
    model: c.name,
    input: c.dims.join('×'),
    batch: c.dims[0],
    facesight_ms: median(timesNative),
    onnxruntime_ms: median(timesOrt),
    // the longest the event loop went without a turn while that engine's runs were in flight
    facesight_loop_stall_ms: stallNative.max,
    onnxruntime_loop_stall_ms: stallOrt.max,
  };
  row.ratio = row.facesight_ms / row.onnxruntime_ms;
  rows.push(row);
  if (!json) console.error(`  ${row.model} ${row.input}: ${row.facesight_ms.toFixed(2)} ms vs ${row.onnxruntime_ms.toFixed(2)} ms`);
}

const meta = {
  date: new Date().toISOString().slice(0, 10),
  cpu: os.cpus()[0]?.model ?? 'unknown',
  threads,
  node: process.version,
  onnxruntime: require('onnxruntime-node/package.json').version,
  simd: facesight.devices().find((d) => d.name === 'cpu')?.detail,
};
if (json) {
  console.log(JSON.stringify({ meta, rows }, null, 2));
} else {
  console.log(`\nfacesight engine vs onnxruntime-node ${meta.onnxruntime} — ${meta.date}, ${meta.cpu}, ${threads} threads, ${meta.simd}`);
  console.log('| model | input | facesight median ms | onnxruntime median ms | ratio | event loop stalled (facesight / onnxruntime), max ms |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const r of rows)
    console.log(`| ${r.model} | ${r.input} | ${r.facesight_ms.toFixed(2)} | ${r.onnxruntime_ms.toFixed(2)} | ${r.ratio.toFixed(2)} | ${r.facesight_loop_stall_ms.toFixed(1)} / ${r.onnxruntime_loop_stall_ms.toFixed(1)} |`);
}

#!/usr/bin/env node
/**
 * `npm run demo`. Until the face pipeline lands (models and FaceEngine), the demo exercises what is
 * here: it reports the compute backends, builds the seed's two networks (RetinaFace-mnet0.25 and
 * FaceNet-MobileNetV1, seeded random weights: the published-weight converters come next), runs them
 * on the native engine off the event loop, and prints output shapes and latency.
 */
import * as os from 'node:os';
import { devices, loadModel } from '../engine';
import { buildRetinaFaceMnet025 } from '../graphs/retinaface';
import { buildFaceNetMobileNetV1 } from '../graphs/facenet';
import { SeededRandom } from '../onnx/random';

async function timeModel(name: string, bytes: Uint8Array, input: string, dims: number[]): Promise<void> {
  const model = await loadModel(bytes);
  const data = new SeededRandom(1).uniformArray(dims.reduce((a, b) => a * b, 1), -1, 1);
  await model.run({ [input]: { data, dims } }); // first run plans memory for this shape
  const times: number[] = [];
  let outputs: Record<string, { dims: readonly number[] }> = {};
  for (let k = 0; k < 10; k++) {
    const t0 = performance.now();
    outputs = await model.run({ [input]: { data, dims } });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const shapes = Object.entries(outputs).map(([k, v]) => `${k} [${v.dims.join('×')}]`).join(', ');
  console.log(`${name.padEnd(22)} input [${dims.join('×')}] → ${shapes}; median ${times[5].toFixed(2)} ms`);
  model.dispose();
}

async function main(): Promise<void> {
  console.log(`facesight demo — ${os.cpus()[0]?.model ?? 'cpu'}, ${os.availableParallelism?.() ?? os.cpus().length} threads`);
  for (const d of devices()) console.log(`  device ${d.name}: ${d.available ? 'available' : 'not available'} — ${d.detail}`);
  console.log('Seed networks with seeded random weights (shape and speed check; real weights arrive with the converters):');
  await timeModel('RetinaFace-mnet0.25', buildRetinaFaceMnet025(), 'input0', [1, 3, 640, 640]);
  await timeModel('FaceNet-MobileNetV1', buildFaceNetMobileNetV1(), 'input', [1, 3, 160, 160]);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

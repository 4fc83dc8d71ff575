#!/usr/bin/env node
/**
 * `npm run demo`: what runs today on a fresh install.
 * 1. The compute backends (`devices()`).
 * 2. The engine on the seed's two networks (RetinaFace-mnet0.25, FaceNet-MobileNetV1; seeded random
 *    weights: a shape and speed check).
 * 3. Face detection with `FaceEngine` on the sample photos inside `@vladmandic/face-api`: with the
 *    shipped default (face-api's SSD, converted from the installed package on first use), and with
 *    RetinaFace when its weights are present (the evaluation data folder, FACESIGHT_DATA, or
 *    FACESIGHT_DETECTOR=retinaface-mnet025=path).
 * Recognition joins the demo with the aligned embedding pipeline (FaceEngine.embed / recognize).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { devices, loadModel } from '../engine';
import { buildRetinaFaceMnet025 } from '../graphs/retinaface';
import { buildFaceNetMobileNetV1 } from '../graphs/facenet';
import { SeededRandom } from '../onnx/random';
import { faceApiModelDir } from '../convert/faceapi';
import { FaceEngine, type FaceEngineOptions } from '../pipeline/face-engine';
import { FaceError } from '../errors';

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
  console.log(`  ${name.padEnd(22)} input [${dims.join('×')}] → ${shapes}; median ${times[5].toFixed(2)} ms`);
  model.dispose();
}

function samplePhotos(): string[] {
  const dir = path.join(faceApiModelDir(), '..', 'demo');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^sample\d+\.jpg$/.test(f)).sort().map((f) => path.join(dir, f)) : [];
}

async function main(): Promise<void> {
  console.log(`facesight demo — ${os.cpus()[0]?.model ?? 'cpu'}, ${os.availableParallelism?.() ?? os.cpus().length} threads`);
  for (const d of devices()) console.log(`  device ${d.name}: ${d.available ? 'available' : 'not available'} — ${d.detail}`);

  console.log('\nThe seed networks with seeded random weights (shape and speed):');
  await timeModel('RetinaFace-mnet0.25', buildRetinaFaceMnet025(), 'input0', [1, 3, 640, 640]);
  await timeModel('FaceNet-MobileNetV1', buildFaceNetMobileNetV1(), 'input', [1, 3, 160, 160]);

  const photos = samplePhotos();
  await detectPhotos('the shipped face-api SSD-MobileNetV1 (default)', photos, {});
  // RetinaFace (the seed's detector) when its weights are here: the evaluation data folder, or
  // FACESIGHT_DETECTOR=retinaface-mnet025=path/to/mobilenet0.25_Final.pth.
  await detectPhotos('RetinaFace-mnet0.25, 640×640 letterbox', photos, {
    detector: process.env.FACESIGHT_DETECTOR ?? 'retinaface-mnet025',
    detection: { inputSize: 640 },
  });
}

async function detectPhotos(label: string, photos: string[], options: FaceEngineOptions): Promise<void> {
  console.log(`\nFace detection with ${label} on the ${photos.length} sample photos of @vladmandic/face-api:`);
  let engine: FaceEngine;
  try {
    engine = await FaceEngine.create(options);
  } catch (error) {
    if (error instanceof FaceError && error.code === 'E_MODEL') {
      console.log(`  skipped: ${error.message.split('\n')[0]}`);
      return;
    }
    throw error;
  }
  const t0 = performance.now();
  const faces = await engine.detect(photos);
  const ms = performance.now() - t0;
  engine.dispose();
  photos.forEach((p, i) => {
    const best = faces[i][0];
    const where = best ? `; best at (${best.box.x.toFixed(0)}, ${best.box.y.toFixed(0)}) ${best.box.width.toFixed(0)}×${best.box.height.toFixed(0)}, score ${best.score.toFixed(3)}` : '';
    console.log(`  ${path.basename(p).padEnd(12)} ${String(faces[i].length).padStart(3)} faces${where}`);
  });
  console.log(`  ${photos.length} photos in one call: ${ms.toFixed(0)} ms, decoding included`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

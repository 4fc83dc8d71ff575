#!/usr/bin/env node
// Writes gpu-data/ (git-ignored) for the GPU machine, which has CMake and CUDA but no Node.js: what
// native/tests/test_cuda_pipeline.cpp needs to run the real networks on real photos.
//   retinaface-mnet025.onnx, mobilefacenet.onnx  converted from the real weights in the data folder
//                                                (FACESIGHT_DATA, default ../shared/data) by the package's
//                                                own converters, the bytes FaceEngine runs
//   <photo>.rgb                                  each photo decoded by sharp (EXIF-rotated, sRGB, no alpha):
//                                                raw RGB, width · height · 3 bytes
//   manifest.json                                the photos (file, size), the model files, and the native
//                                                detector / embedder configs FaceEngine passes to C++
//   reference.json                               per photo, FaceEngine's (CPU) faces on those frames: box
//                                                x1 y1 x2 y2, score, five landmarks, embedding
// Run here, after `npm run build` (it uses dist/ and the addon): node scripts/gpu/prepare-data.mjs [out-dir]
// Then carry gpu-data to the device call (scripts/gpu/run.sh).
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const facesight = require(path.join(root, 'dist', 'index.js'));
const stages = require(path.join(root, 'dist', 'pipeline', 'stages.js'));
const sharp = require('sharp');

const out = path.resolve(process.argv[2] ?? path.join(root, 'gpu-data'));
const dataDir = process.env.FACESIGHT_DATA ? path.resolve(process.env.FACESIGHT_DATA) : path.resolve(root, '../shared/data');

// Faces of several sizes, a 29-face group, a grey photo, and one without faces.
const PHOTOS = [
  'photos/grace_hopper_512x512.jpg',
  'photos/opencv_messi5.jpg',
  'photos/skimage_astronaut.png',
  'photos/group_solvay1927.jpg',
  'photos/gallery_match/query_obama.jpg',
  'lfw/images/Aaron_Sorkin/Aaron_Sorkin_0001.jpg',
  'photos/noface_skimage_coffee.png',
];
const DETECTOR = 'retinaface-mnet025';
const EMBEDDER = 'mobilefacenet';

function fail(message) {
  console.error(`prepare-data: ${message}`);
  process.exit(1);
}

for (const p of PHOTOS) if (!fs.existsSync(path.join(dataDir, p))) fail(`${p} not found under ${dataDir} (set FACESIGHT_DATA to the shared data folder)`);
fs.mkdirSync(out, { recursive: true });

// The stages as FaceEngine builds them: the same ONNX bytes and native configs.
const engine = await facesight.FaceEngine.create({ threads: 2, detector: DETECTOR, embedder: EMBEDDER, landmarks: false, alignment: 'similarity' });
const detector = await stages.detectorStage(stages.resolveStage(DETECTOR, 'detector', 'options.detector'), engine.detection);
const embedder = await stages.embedderStage(stages.resolveStage(EMBEDDER, 'embedder', 'options.embedder'), 'similarity', false);
fs.writeFileSync(path.join(out, `${DETECTOR}.onnx`), detector.bytes);
fs.writeFileSync(path.join(out, `${EMBEDDER}.onnx`), embedder.bytes);
const { anchors, ...detectorConfig } = detector.config; // RetinaFace: no anchors (an empty Float32Array)
if (anchors.length) fail('expected a RetinaFace detector (no SSD anchors)');

const photos = [];
const reference = [];
for (const relative of PHOTOS) {
  const { data, info } = await sharp(path.join(dataDir, relative)).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) fail(`${relative}: decoded to ${info.channels} channels, not 3`);
  const name = path.basename(relative).replace(/\.[a-z]+$/i, '');
  const file = `${name}.rgb`;
  fs.writeFileSync(path.join(out, file), data);
  photos.push({ name, source: relative, file, width: info.width, height: info.height, channels: 3 });
  const faces = await engine.embed({ data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: 3 });
  reference.push({
    name,
    faces: faces.map((f) => ({
      box: [f.box.x, f.box.y, f.box.x + f.box.width, f.box.y + f.box.height],
      score: f.score,
      landmarks: f.landmarks.flatMap((p) => [p.x, p.y]),
      embedding: Array.from(f.embedding),
    })),
  });
  console.log(`${relative}: ${info.width}×${info.height}, ${faces.length} faces`);
}
engine.dispose();

const manifest = {
  comment: 'Written by scripts/gpu/prepare-data.mjs; read by native/tests/test_cuda_pipeline.cpp',
  detector: { name: DETECTOR, file: `${DETECTOR}.onnx`, config: detectorConfig },
  embedder: { name: EMBEDDER, file: `${EMBEDDER}.onnx`, config: embedder.config },
  photos,
};
fs.writeFileSync(path.join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 1)}\n`);
fs.writeFileSync(path.join(out, 'reference.json'), `${JSON.stringify({ photos: reference })}\n`);
const bytes = fs.readdirSync(out).reduce((sum, f) => sum + fs.statSync(path.join(out, f)).size, 0);
console.log(`wrote ${out}: ${photos.length} photos, ${(bytes / 2 ** 20).toFixed(1)} MiB`);

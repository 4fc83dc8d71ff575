/**
 * `facesight eval lfw` and `facesight eval widerface`: the field's evaluations on real data, with
 * the pipeline as users run it (see lib/eval/ for the metrics).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FaceError } from '../errors';
import { evaluateVerification, lfwImagePath, readLfwPairs, rocPng, type VerificationResult } from '../eval/lfw';
import { evaluateWiderFace, loadWiderGroundTruth, widerKey, type WiderPrediction } from '../eval/widerface';
import { FaceEngine, type EmbeddedFace, type FaceEngineOptions } from '../pipeline/face-engine';
import { euclideanDistance } from '../pipeline/faces';
import { decodeImages } from '../pipeline/image';
import { EXIT_OK, table, UsageError, type CliIO, type Command, type ParsedArgs } from './command';
import { ENGINE_OPTION_SPECS, engineOptionsFrom, Progress } from './engine-options';

const BATCH = 16;
/** Distance given to a pair with an image where no face was found: above any real one (≤ 2). */
const NO_FACE_DISTANCE = 4;

function requiredPath(args: ParsedArgs, key: string, what: string): string {
  const v = args.values[key];
  if (typeof v !== 'string' || v === '') throw new UsageError(`missing --${key} <${what}> (see 'facesight eval --help')`);
  const resolved = path.resolve(v);
  if (!fs.existsSync(resolved)) throw new UsageError(`--${key}: no such file or folder: ${v}`);
  return resolved;
}

/** LFW images are centred on their subject: of several faces, the one nearest the centre. */
function central(faces: readonly EmbeddedFace[], width: number, height: number): EmbeddedFace | undefined {
  let best: EmbeddedFace | undefined;
  let bestDistance = Infinity;
  for (const f of faces) {
    const d = Math.hypot(f.box.x + f.box.width / 2 - width / 2, f.box.y + f.box.height / 2 - height / 2);
    if (d < bestDistance) [best, bestDistance] = [f, d];
  }
  return best;
}

interface LfwEmbeddings {
  embeddings: (Float32Array | undefined)[];
  /** The engine's models and alignment, for the report. */
  models: FaceEngine['models'];
  alignment: FaceEngine['alignment'];
  /** Images where the engine's own settings found no face, and where the lowered threshold did not either. */
  noFace: string[];
  noFaceAtAll: string[];
}

async function embedLfw(files: readonly string[], options: FaceEngineOptions, label: string, io: CliIO): Promise<LfwEmbeddings> {
  const embeddings: (Float32Array | undefined)[] = new Array(files.length);
  // Decoded here (not by embed) so that each image's size is known for choosing its central face.
  const pick = async (engine: FaceEngine, batch: readonly string[]) => {
    const frames = await decodeImages(batch, { limitInputPixels: engine.limitInputPixels });
    const faces = await engine.embed(frames);
    return faces.map((list, k) => central(list, frames[k].width, frames[k].height)?.embedding);
  };
  const engine = await FaceEngine.create(options);
  const progress = new Progress(io, label, files.length);
  try {
    for (let first = 0; first < files.length; first += BATCH) {
      const batch = files.slice(first, first + BATCH);
      (await pick(engine, batch)).forEach((e, k) => (embeddings[first + k] = e));
      progress.update(Math.min(files.length, first + BATCH));
    }
  } finally {
    progress.finish();
    engine.dispose();
  }
  // No face at the engine's threshold: try again at a low one (LFW shows one centred face per image).
  const noFace = files.filter((_, i) => !embeddings[i]);
  if (noFace.length) {
    const retry = await FaceEngine.create({ ...options, detection: { ...options.detection, threshold: 0.05 } });
    try {
      for (let first = 0; first < noFace.length; first += BATCH) {
        const batch = noFace.slice(first, first + BATCH);
        (await pick(retry, batch)).forEach((e, k) => (embeddings[files.indexOf(batch[k])] = e));
      }
    } finally {
      retry.dispose();
    }
  }
  return { embeddings, models: engine.models, alignment: engine.alignment, noFace, noFaceAtAll: files.filter((_, i) => !embeddings[i]) };
}

function summary(result: VerificationResult) {
  const tar = result.tarAtFar.find((t) => t.targetFar === 1e-3)!;
  return {
    accuracy: result.accuracyMean,
    accuracyStd: result.accuracyStd,
    auc: result.auc,
    tarAtFar1e3: tar.tar,
    threshold: result.thresholdMean,
    folds: result.folds.map((f) => ({ fold: f.fold + 1, accuracy: f.accuracy, threshold: f.threshold })),
  };
}

async function evalLfw(args: ParsedArgs, io: CliIO): Promise<number> {
  const pairsFile = requiredPath(args, 'pairs', 'pairs.txt');
  const imagesDir = requiredPath(args, 'images', 'folder');
  const flip = Boolean(args.values.flip);
  const pairs = readLfwPairs(pairsFile);
  const index = new Map<string, number>();
  const files: string[] = [];
  const at = (ref: { name: string; index: number }) => {
    const file = lfwImagePath(imagesDir, ref.name, ref.index);
    let i = index.get(file);
    if (i === undefined) {
      i = files.length;
      index.set(file, i);
      files.push(file);
    }
    return i;
  };
  const pairIndex = pairs.pairs.map((p) => [at(p.a), at(p.b)] as const);
  const missing = files.filter((f) => !fs.existsSync(f));
  if (missing.length) throw new FaceError('E_INPUT', `${missing.length} of the ${files.length} images named by ${pairsFile} are missing under ${imagesDir}, e.g. ${missing.slice(0, 3).join(', ')}`);

  const options = engineOptionsFrom(args);
  const started = Date.now();
  const runs: Record<string, LfwEmbeddings> = { plain: await embedLfw(files, options, 'lfw', io) };
  // --flip: the engine's test-time flip (each aligned face and its mirror image, added).
  if (flip) runs.flip = await embedLfw(files, { ...options, flip: true }, 'lfw (flip)', io);
  const seconds = (Date.now() - started) / 1000;

  const same = pairs.pairs.map((p) => p.same);
  const folds = pairs.pairs.map((p) => p.fold);
  const results: Record<string, VerificationResult> = {};
  for (const [name, run] of Object.entries(runs)) {
    const scores = pairIndex.map(([a, b]) => {
      const ea = run.embeddings[a];
      const eb = run.embeddings[b];
      return ea && eb ? euclideanDistance(ea, eb) : NO_FACE_DISTANCE;
    });
    results[name] = evaluateVerification(scores, same, folds, { higherIsSimilar: false });
  }
  const embedded = runs.plain;

  const { models, alignment } = embedded;
  const report = {
    pairs: pairs.pairs.length,
    folds: pairs.folds,
    images: files.length,
    models: { detector: models.detector.name, landmarks: models.landmarks?.name ?? null, embedder: models.embedder?.name ?? null },
    alignment,
    noFace: { atEngineThreshold: embedded.noFace.length, atThreshold005: embedded.noFaceAtAll.length, files: embedded.noFaceAtAll.map((f) => path.relative(imagesDir, f)) },
    faceChoice: 'the face nearest the image centre (LFW centres each image on its subject)',
    noFaceHandling: `images without a face at the engine's threshold were detected again at threshold 0.05; pairs with an image still without a face count as "different" (distance ${NO_FACE_DISTANCE})`,
    seconds,
    threads: options.threads ?? os.availableParallelism(),
    results: Object.fromEntries(Object.entries(results).map(([k, r]) => [k, summary(r)])),
  };
  if (typeof args.values.roc === 'string') {
    const curves = Object.entries(results).map(([k, r]) => ({ far: r.roc.far, tar: r.roc.tar, label: k === 'flip' ? 'with flip' : 'without flip' }));
    await rocPng(curves, { path: path.resolve(args.values.roc), title: `LFW: ${report.models.embedder} (${alignment} alignment)` });
  }
  if (args.values.json) {
    io.out(JSON.stringify(report, null, 2));
    return EXIT_OK;
  }
  io.out(`LFW ${pairs.folds} folds × ${pairs.pairsPerFold * 2} pairs, ${files.length} images, ${report.models.detector} → ${report.models.landmarks ?? '-'} → ${report.models.embedder}, alignment ${alignment}, ${seconds.toFixed(0)} s`);
  io.out(
    table([
      ['', 'accuracy', 'AUC', 'TAR@FAR=1e-3', 'threshold'],
      ...Object.entries(report.results).map(([k, r]) => [
        k === 'flip' ? 'with flip' : 'without flip',
        `${(100 * r.accuracy).toFixed(2)} ± ${(100 * r.accuracyStd).toFixed(2)} %`,
        r.auc.toFixed(4),
        r.tarAtFar1e3.toFixed(4),
        r.threshold.toFixed(4),
      ]),
    ]),
  );
  io.out(`no face: ${embedded.noFace.length} images at the engine's threshold, ${embedded.noFaceAtAll.length} at 0.05 (their pairs count as "different")`);
  return EXIT_OK;
}

async function evalWiderFace(args: ParsedArgs, io: CliIO): Promise<number> {
  const imagesDir = requiredPath(args, 'images', 'folder');
  const gtDir = requiredPath(args, 'gt', 'folder');
  const gt = loadWiderGroundTruth(gtDir);
  const files: string[] = [];
  for (const event of fs.readdirSync(imagesDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
    for (const name of fs.readdirSync(path.join(imagesDir, event)).filter((f) => /\.jpe?g$/i.test(f)).sort()) files.push(`${event}/${name}`);
  }
  const unknown = files.filter((f) => !gt.images.has(widerKey(f)));
  if (unknown.length) throw new FaceError('E_INPUT', `${unknown.length} images under ${imagesDir} are not in the ground truth, e.g. ${unknown.slice(0, 3).join(', ')}`);
  if (files.length === 0) throw new FaceError('E_INPUT', `No images (event/*.jpg) under ${imagesDir}`);

  // Pytorch_Retinaface's test_widerface.py protocol: score > 0.02, top 5000 before NMS 0.4, keep 750.
  const options = engineOptionsFrom(args, { embedder: false });
  options.landmarks = false;
  options.detection = { threshold: 0.02, nmsThreshold: 0.4, maxFaces: 750, preNmsTopK: 5000, ...options.detection };
  const engine = await FaceEngine.create(options);
  const predictions = new Map<string, WiderPrediction[]>();
  const progress = new Progress(io, 'widerface', files.length);
  const started = Date.now();
  try {
    for (let first = 0; first < files.length; first += 4) {
      const batch = files.slice(first, first + 4);
      const faces = await engine.detect(batch.map((f) => path.join(imagesDir, f)));
      batch.forEach((f, k) =>
        predictions.set(
          widerKey(f),
          // Whole pixels, as the protocol writes its prediction files: int(x1), int(y1), int(x2) − int(x1), …
          faces[k].map((d) => {
            const x1 = Math.trunc(d.box.x);
            const y1 = Math.trunc(d.box.y);
            return { box: [x1, y1, Math.trunc(d.box.x + d.box.width) - x1, Math.trunc(d.box.y + d.box.height) - y1] as const, score: d.score };
          }),
        ),
      );
      progress.update(Math.min(files.length, first + 4));
    }
  } finally {
    progress.finish();
  }
  const seconds = (Date.now() - started) / 1000;
  const result = evaluateWiderFace(predictions, gt, { images: files.map(widerKey) });
  const report = {
    detector: engine.detector.name,
    inputSize: engine.detection.inputSize,
    images: result.images,
    faces: { easy: result.curves.easy.faces, medium: result.curves.medium.faces, hard: result.curves.hard.faces },
    ap: { easy: result.easy, medium: result.medium, hard: result.hard },
    seconds,
  };
  engine.dispose();
  if (args.values.json) {
    io.out(JSON.stringify(report, null, 2));
    return EXIT_OK;
  }
  const size = typeof report.inputSize === 'object' ? `${report.inputSize.width}×${report.inputSize.height}` : String(report.inputSize);
  io.out(`WIDER FACE, ${result.images} images, ${report.detector} at input size ${size}, ${seconds.toFixed(0)} s`);
  io.out(table([['', 'easy', 'medium', 'hard'], ['AP', result.easy.toFixed(4), result.medium.toFixed(4), result.hard.toFixed(4)], ['faces', ...(['easy', 'medium', 'hard'] as const).map((d) => String(report.faces[d]))]]));
  return EXIT_OK;
}

export const evalCommand: Command = {
  name: 'eval',
  summary: 'evaluate models: LFW verification, WIDER FACE detection',
  usage: [
    'facesight eval lfw --pairs <pairs.txt> --images <dir> [--flip] [--roc roc.png] [--json] [model options]',
    'facesight eval widerface --images <WIDER_val/images> --gt <ground_truth dir> [--input-size original|N] [--json] [--detector …]',
  ],
  description:
    "lfw: the View-2 protocol. Every image is embedded (the face nearest its centre); per fold the threshold is\n" +
    'chosen on the other folds; prints mean accuracy ± std, AUC, TAR at FAR 1e-3 and the threshold. --flip runs\n' +
    "again with the engine's test-time flip (each aligned face plus its mirror image) and reports both.\n" +
    'widerface: AP on easy / medium / hard as the\n' +
    "official evaluation computes it, for the images present under --images (score > 0.02, NMS 0.4, top 750).",
  options: {
    pairs: { type: 'string', valueName: 'pairs.txt', description: 'lfw: the pairs file (header: folds, pairs per fold)' },
    images: { type: 'string', valueName: 'dir', description: 'lfw: the folder of person folders; widerface: the folder of event folders' },
    gt: { type: 'string', valueName: 'dir', description: 'widerface: the folder with wider_face_val.mat and wider_{easy,medium,hard}_val.mat' },
    flip: { type: 'boolean', description: "lfw: also run with the engine's test-time flip, and report with and without it" },
    roc: { type: 'string', valueName: 'roc.png', description: 'lfw: draw the ROC curve to a PNG' },
    json: { type: 'boolean', description: 'print the results as JSON' },
    ...ENGINE_OPTION_SPECS,
  },
  async run(args, io) {
    const [which, ...rest] = args.positionals;
    if (rest.length) throw new UsageError(`too many arguments: ${rest.map((r) => `'${r}'`).join(' ')} (see 'facesight eval --help')`);
    if (which === 'lfw') return evalLfw(args, io);
    if (which === 'widerface') return evalWiderFace(args, io);
    throw new UsageError(`${which === undefined ? 'missing the evaluation' : `unknown evaluation '${which}'`}: 'lfw' or 'widerface' (see 'facesight eval --help')`);
  },
};

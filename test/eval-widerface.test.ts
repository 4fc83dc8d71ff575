// WIDER FACE AP as the official evaluation computes it: a hand-computed synthetic set (an ignored
// box, a duplicate detection, an image without faces), the +1 IoU convention, the official quirks,
// and the real ground truth (counts, and AP 1 for the ground truth itself).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { FaceError } from '../lib/errors';
import { evaluateWiderFace, loadWiderGroundTruth, widerKey, widerOverlap, type WiderGroundTruth, type WiderImage, type WiderPrediction } from '../lib/eval/widerface';
import { dataPath } from './helpers/data';

type Box = [number, number, number, number];

/** Ground truth by hand: boxes and the 0-based indices that count per difficulty. */
function groundTruth(images: { key: string; boxes: Box[]; easy: number[]; medium: number[]; hard: number[] }[]): WiderGroundTruth {
  const gt: WiderGroundTruth = { events: [], images: new Map() };
  for (const spec of images) {
    const [event, name] = spec.key.split('/');
    const image: WiderImage = {
      event, name, key: spec.key,
      boxes: new Float64Array(spec.boxes.flat()),
      keep: { easy: Int32Array.from(spec.easy), medium: Int32Array.from(spec.medium), hard: Int32Array.from(spec.hard) },
    };
    let group = gt.events.find((e) => e.name === event);
    if (!group) gt.events.push((group = { name: event, images: [] }));
    group.images.push(image);
    gt.images.set(image.key, image);
  }
  return gt;
}

const G0: Box = [0, 0, 10, 10];
const G1: Box = [100, 100, 10, 10];
const G2: Box = [200, 200, 10, 10];
// Image A: G1 does not count at easy, G2 not at medium. Image B has no face.
const GT = groundTruth([
  { key: '1--Test/A', boxes: [G0, G1, G2], easy: [0, 2], medium: [0, 1], hard: [0, 1, 2] },
  { key: '1--Test/B', boxes: [], easy: [], medium: [], hard: [] },
]);
// A's detections, best first: G0; a duplicate of G0 (IoU (10·10)/(11·11·2 − 100) = 0.70 with +1
// sizes); G1; a false positive; G2. B: one false positive, scoring above everything.
const PREDICTIONS = new Map<string, WiderPrediction[]>([
  ['1--Test/A', [
    { box: G0, score: 0.9 },
    { box: [1, 1, 10, 10], score: 0.8 },
    { box: G1, score: 0.7 },
    { box: [500, 500, 10, 10], score: 0.6 },
    { box: G2, score: 0.5 },
  ]],
  ['1--Test/B.jpg', [{ box: [50, 50, 10, 10], score: 0.95 }]],
]);

t.test('invalid input', async (t) => {
  t.throws(() => evaluateWiderFace({} as never, GT), { name: 'TypeError', code: 'E_INPUT', message: /Expected a Map from "event\/name" to predictions for predictions/ });
  t.throws(() => evaluateWiderFace(PREDICTIONS, {} as never), { name: 'TypeError', message: /ground truth from loadWiderGroundTruth\(\)/ });
  t.throws(() => evaluateWiderFace(PREDICTIONS, GT, { iouThreshold: 0 }), { name: 'RangeError', message: /a number in \(0, 1\] for options.iouThreshold but received number 0/ });
  t.throws(() => evaluateWiderFace(PREDICTIONS, GT, { images: '1--Test/A' as never }), { name: 'TypeError', message: /options.images/ });
  t.throws(() => evaluateWiderFace(PREDICTIONS, GT, { images: ['1--Test/C'] }), { code: 'E_INPUT', message: /options.images: 1--Test\/C is not an image of the ground truth/ });
  t.throws(() => evaluateWiderFace(new Map([['1--Test/A', []]]), GT), { code: 'E_INPUT', message: /predictions: no entry for 1--Test\/B \(give an empty array/ });
  const bad = (p: unknown) => new Map<string, WiderPrediction[]>([['1--Test/A', [p as WiderPrediction]], ['1--Test/B', []]]);
  t.throws(() => evaluateWiderFace(bad({ box: [0, 0, 1], score: 1 }), GT), { name: 'RangeError', message: /a box of 4 numbers \[x, y, w, h\] for predictions of 1--Test\/A\[0\].box/ });
  t.throws(() => evaluateWiderFace(bad({ box: [0, 0, 1, NaN], score: 1 }), GT), { name: 'TypeError', message: /finite numbers/ });
  t.throws(() => evaluateWiderFace(bad({ box: [0, 0, 1, 1], score: '1' }), GT), { name: 'TypeError', message: /a finite number for predictions of 1--Test\/A\[0\].score/ });
  t.throws(() => evaluateWiderFace(bad(null), GT), { name: 'TypeError' });
  t.throws(() => evaluateWiderFace(new Map([['1--Test/A', []], ['1--Test/A.jpg', []], ['1--Test/B', []]]), GT), { code: 'E_INPUT', message: /appears twice/ });

  t.throws(() => loadWiderGroundTruth(''), { name: 'TypeError' });
  const empty = fs.mkdtempSync(`${os.tmpdir()}/facesight-wider-`);
  t.teardown(() => fs.rmSync(empty, { recursive: true, force: true }));
  t.throws(() => loadWiderGroundTruth(empty), { code: 'E_INPUT', message: /Cannot read .*wider_face_val\.mat/ });
  // A .mat file without WIDER's variables.
  fs.writeFileSync(`${empty}/wider_face_val.mat`, Buffer.concat([Buffer.from('MATLAB 5.0 MAT-file'.padEnd(124, ' ')), Buffer.from([0, 1, 0x49, 0x4d])]));
  for (const d of ['easy', 'medium', 'hard']) fs.copyFileSync(`${empty}/wider_face_val.mat`, `${empty}/wider_${d}_val.mat`);
  t.throws(() => loadWiderGroundTruth(empty), { code: 'E_INPUT', message: /wider_face_val\.mat: event_list is not a cell array; not a WIDER FACE ground-truth file/ });
});

t.test('the official IoU: x2 = x + w and +1 sizes', async (t) => {
  t.equal(widerOverlap([0, 0, 10, 10], [0, 0, 10, 10]), 1);
  t.equal(widerOverlap([0, 0, 2, 2], [0, 0, 3, 3]), 9 / 16, '3×3 of 4×4 pixels (plain IoU: 4/9)');
  t.equal(widerOverlap([0, 0, 10, 10], [10, 10, 5, 5]), 1 / (121 + 36 - 1), 'touching corners share one pixel');
  t.equal(widerOverlap([0, 0, 10, 10], [11, 0, 5, 5]), 0);
  // So a detection at plain IoU 0.44 still recalls the face.
  const gt = groundTruth([{ key: 'e/x', boxes: [[0, 0, 3, 3]], easy: [0], medium: [0], hard: [0] }]);
  const r = evaluateWiderFace(new Map([['e/x', [{ box: [0, 0, 2, 2] as const, score: 0.9 }]]]), gt);
  t.same([r.easy, r.medium, r.hard], [1, 1, 1]);
});

t.test('hand-computed AP', async (t) => {
  const r = evaluateWiderFace(PREDICTIONS, GT);
  t.equal(r.images, 2);
  t.same([r.curves.easy.faces, r.curves.medium.faces, r.curves.hard.faces], [2, 2, 3]);
  // easy (G1 ignored): after each detection (precision, recall) = (1, 1/2) (1/2, 1/2) [G1 ignored:
  // unchanged] (1/3, 1/2) (1/2, 1); envelope 1 up to recall 1/2, then 1/2: AP = 0.5 + 0.25.
  t.ok(Math.abs(r.easy - 0.75) < 1e-12, `easy ${r.easy} = 0.75`);
  // medium (G2 ignored): (1, 1/2) (1/2, 1/2) (2/3, 1) (1/2, 1) [G2 ignored]: AP = 0.5 + 0.5·2/3.
  t.ok(Math.abs(r.medium - 5 / 6) < 1e-12, `medium ${r.medium} = 5/6`);
  // hard: (1, 1/3) (1/2, 1/3) (2/3, 2/3) (1/2, 2/3) (3/5, 1): AP = 1/3 + 1/3·2/3 + 1/3·3/5 = 34/45.
  t.ok(Math.abs(r.hard - 34 / 45) < 1e-12, `hard ${r.hard} = 34/45`);
  // The curves start at thresholds above every score of A (B's detection is the top score): 0/0.
  t.ok(Number.isNaN(r.curves.hard.precision[0]), 'no detection above the first threshold: precision NaN, as the official code');
  t.equal(r.curves.hard.recall[999], 1);

  // B has no face, so (as in the official code) its false positive is never counted: AP is the same
  // without it, and when evaluating A alone.
  const withoutB = new Map(PREDICTIONS);
  withoutB.set('1--Test/B.jpg', []);
  const r2 = evaluateWiderFace(withoutB, GT);
  t.same([r2.easy, r2.medium, r2.hard], [r.easy, r.medium, r.hard], 'false positives on a face-less image do not count');
  const r3 = evaluateWiderFace(PREDICTIONS, GT, { images: new Set(['1--Test/A.jpg']) });
  t.same([r3.easy, r3.medium, r3.hard, r3.images], [r.easy, r.medium, r.hard, 1], 'restricted to image A');
  t.equal(widerKey('1--Test\\A.jpg'), '1--Test/A');

  // A stricter IoU turns the duplicate (0.70) into a plain false positive: nothing else changes.
  const r4 = evaluateWiderFace(PREDICTIONS, GT, { iouThreshold: 0.75 });
  t.same([r4.easy, r4.medium, r4.hard], [r.easy, r.medium, r.hard]);
  // At threshold 1 the exact boxes (IoU 1) still match.
  t.same(evaluateWiderFace(PREDICTIONS, GT, { iouThreshold: 1 }).hard, r.hard);
});

t.test('official quirks', async (t) => {
  const gt = groundTruth([{ key: 'e/x', boxes: [G0], easy: [0], medium: [0], hard: [0] }]);
  // Predictions are used in the order given: the last one scoring ≥ a threshold brings every earlier
  // one in. Here a false positive listed before the true one is counted at every threshold.
  const sorted = evaluateWiderFace(new Map([['e/x', [{ box: G0, score: 0.9 }, { box: G2, score: 0.5 }]]]), gt);
  const unsorted = evaluateWiderFace(new Map([['e/x', [{ box: G2, score: 0.5 }, { box: G0, score: 0.9 }]]]), gt);
  t.equal(sorted.hard, 1);
  t.equal(unsorted.hard, 0.5, 'unsorted input changes the result (give predictions best first)');
  // Every score equal: the official code divides 0 by 0; here all normalised scores are 1.
  const flat = evaluateWiderFace(new Map([['e/x', [{ box: G0, score: 0.3 }]]]), gt);
  t.equal(flat.hard, 1);
  // The normalisation's min starts at 1 (max at 0): scores 3 and 2 normalise to 1 and 0.5, not 1
  // and 0, so the second detection enters at threshold 0.5.
  const large = evaluateWiderFace(new Map([['e/x', [{ box: G0, score: 3 }, { box: G2, score: 2 }]]]), gt);
  t.equal(large.hard, 1);
  t.equal(large.curves.hard.precision[498], 1, 'threshold 0.501: the first detection only');
  t.equal(large.curves.hard.precision[499], 0.5, 'threshold 0.5: both');
});

t.test('WIDER FACE val ground truth (shared data)', async (t) => {
  const dir = dataPath(t, 'widerface/ground_truth');
  const list = dataPath(t, 'widerface/WIDER_val/image_list.txt');
  if (!dir || !list) return;
  const gt = loadWiderGroundTruth(dir);
  t.equal(gt.events.length, 61, '61 events');
  t.equal(gt.images.size, 3226, '3,226 images');
  let boxes = 0;
  for (const image of gt.images.values()) boxes += image.boxes.length / 4;
  t.equal(boxes, 39708, '39,708 boxes');
  const first = gt.events[0].images[0];
  t.same([first.key, Array.from(first.boxes.subarray(0, 4))], ['0--Parade/0_Parade_marchingband_1_465', [345, 211, 4, 4]]);

  const subset = fs.readFileSync(list, 'utf8').split('\n').filter((line) => line.trim() !== '');
  t.equal(subset.length, 373);
  const counts = { easy: 0, medium: 0, hard: 0 };
  for (const name of subset) {
    const image = gt.images.get(widerKey(name));
    if (!image) {
      t.fail(`${name} is not in the ground truth`);
      continue;
    }
    for (const d of ['easy', 'medium', 'hard'] as const) counts[d] += image.keep[d].length;
  }
  t.same(counts, { easy: 903, medium: 1924, hard: 5639 }, 'faces per difficulty on the subset');

  // The ground truth as predictions (score 1 each) scores AP 1 on the subset.
  const predictions = new Map<string, WiderPrediction[]>();
  for (const name of subset) {
    const image = gt.images.get(widerKey(name)) as WiderImage;
    const list: WiderPrediction[] = [];
    for (let b = 0; b < image.boxes.length / 4; b++) list.push({ box: Array.from(image.boxes.subarray(b * 4, b * 4 + 4)) as Box, score: 1 });
    predictions.set(name, list);
  }
  const r = evaluateWiderFace(predictions, gt, { images: subset });
  t.equal(r.images, 373);
  t.same([r.curves.easy.faces, r.curves.medium.faces, r.curves.hard.faces], [903, 1924, 5639]);
  t.same([r.easy, r.medium, r.hard], [1, 1, 1], 'AP 1 for the ground truth itself');
});

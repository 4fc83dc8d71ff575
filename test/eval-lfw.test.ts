// LFW verification: the pairs parser (tiny fixture, malformed files, the real View-2 folds), the
// n-fold protocol on hand-computed scores and against brute force, and the ROC chart.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { FaceError } from '../lib/errors';
import { evaluateVerification, lfwImagePath, parseLfwPairs, readLfwPairs, rocPng, rocSvg } from '../lib/eval/lfw';
import { SeededRandom } from '../lib/onnx/random';
import { dataPath, repoRoot } from './helpers/data';

const TINY = path.join(repoRoot, 'test', 'fixtures', 'eval', 'pairs-tiny.txt');

// The fixture's pairs in file order: fold 0 matched ×2, mismatched ×2, then fold 1 likewise.
const SAME = [true, true, false, false, true, true, false, false];
const FOLDS = [0, 0, 0, 0, 1, 1, 1, 1];
// Fold 0: matched 9, 6; mismatched 2, 3 (separable). Fold 1: matched 1, 8; mismatched 4, 5.
const SCORES = [9, 6, 2, 3, 1, 8, 4, 5];

function expectParseError(t: Tap.Test, text: string, line: number, message: RegExp, what: string): void {
  try {
    parseLfwPairs(text, 'tiny.txt');
    t.fail(`${what}: expected an error`);
  } catch (error) {
    t.ok(error instanceof FaceError, `${what}: a FaceError`);
    t.equal((error as FaceError).code, 'E_INPUT', `${what}: E_INPUT`);
    t.match((error as Error).message, new RegExp(`^tiny\\.txt:${line}: `), `${what}: names the file and line ${line}`);
    t.match((error as Error).message, message, `${what}: says what is wrong`);
  }
}

t.test('invalid input', async (t) => {
  const good = fs.readFileSync(TINY, 'utf8').split('\n');
  const edit = (line: number, text: string | null) => {
    const lines = good.slice();
    if (text === null) lines.splice(line - 1, 1);
    else lines[line - 1] = text;
    return lines.join('\n');
  };
  expectParseError(t, '', 1, /empty file/, 'empty');
  expectParseError(t, '10\n', 1, /header "folds pairsPerFold"/, 'one-number header');
  expectParseError(t, edit(1, 'two 2'), 1, /header/, 'non-numeric header');
  expectParseError(t, edit(1, '0\t2'), 1, /positive integers/, 'zero folds');
  expectParseError(t, edit(1, '2 2 2'), 1, /header/, 'three-number header');
  expectParseError(t, edit(2, 'Alice\t1'), 2, /expected matched pair 1 of 2 .* found 2 fields/, 'too few fields');
  expectParseError(t, edit(4, 'Alice 1 Bob 2 3'), 4, /mismatched pair 1 of 2 .* found 5 fields/, 'too many fields');
  expectParseError(t, edit(3, 'Bob 1 x'), 3, /positive integer image number for Bob but found "x"/, 'non-integer index');
  expectParseError(t, edit(3, 'Bob 0 3'), 3, /positive integer .* "0"/, 'index 0');
  expectParseError(t, edit(3, 'Bob 1.5 3'), 3, /positive integer .* "1.5"/, 'fractional index');
  expectParseError(t, edit(3, 'Bob -1 3'), 3, /positive integer .* "-1"/, 'negative index');
  expectParseError(t, edit(5, 'Carol 1 Dave 0'), 5, /positive integer .* Dave/, 'mismatched index 0');
  expectParseError(t, edit(3, '../x 1 3'), 3, /invalid name/, 'name with a path separator');
  // Fold 1 with one matched pair only: its first mismatched line arrives where a matched one belongs.
  expectParseError(t, edit(3, null), 3, /fold 1: found a mismatched pair where matched pair 2 of 2 .* expected \(wrong pair count/, 'a fold short of matched pairs');
  expectParseError(t, edit(5, 'Carol 1 2'), 5, /fold 1: found a matched pair where mismatched pair 2 of 2/, 'a matched line where a mismatched one belongs');
  expectParseError(t, good.slice(0, 7).join('\n'), 8, /ends in fold 2 of 2: .* \(9 lines\), found 7 lines/, 'truncated');
  expectParseError(t, `${good.join('\n')}\nZed 1 2\n`, 10, /unexpected line/, 'an extra line');
  t.throws(() => parseLfwPairs(Buffer.from('1 1') as unknown as string, 'x'), { name: 'TypeError', code: 'E_INPUT' }, 'text not a string');
  t.throws(() => readLfwPairs(path.join(os.tmpdir(), 'facesight-no-such-pairs.txt')), { code: 'E_INPUT', message: /Cannot read .*facesight-no-such-pairs\.txt/ }, 'a missing file');

  t.throws(() => lfwImagePath('/lfw', 'Alice', 0), { name: 'RangeError', code: 'E_INPUT', message: /Expected a positive integer for index but received number 0/ });
  t.throws(() => lfwImagePath('/lfw', 'a/b', 1), { name: 'TypeError', code: 'E_INPUT' });

  const ok = { higherIsSimilar: true };
  t.throws(() => evaluateVerification('1,2' as unknown as number[], SAME, FOLDS, ok), { name: 'TypeError', code: 'E_INPUT', message: /Expected an array of numbers for scores but received "1,2"/ });
  t.throws(() => evaluateVerification(SCORES.slice(1), SAME, FOLDS, ok), { name: 'RangeError', message: /for same/ }, 'length mismatch');
  t.throws(() => evaluateVerification(SCORES, SAME, FOLDS.slice(1), ok), { name: 'RangeError', message: /for folds/ });
  t.throws(() => evaluateVerification([NaN, ...SCORES.slice(1)], SAME, FOLDS, ok), { name: 'RangeError', message: /finite numbers for scores\[0\]/ });
  t.throws(() => evaluateVerification(SCORES, SAME.map(() => true), FOLDS, ok), { name: 'RangeError', message: /both same and different pairs/ });
  t.throws(() => evaluateVerification(SCORES, SAME, FOLDS.map(() => 3), ok), { name: 'RangeError', message: /at least two distinct folds/ });
  t.throws(() => evaluateVerification(SCORES, SAME, FOLDS.map((f) => f + 0.5), ok), { name: 'TypeError', message: /integers for folds\[0\]/ });
  t.throws(() => evaluateVerification(SCORES, SAME, FOLDS, {} as never), { name: 'TypeError', message: /a boolean for options.higherIsSimilar/ });
  t.throws(() => evaluateVerification(SCORES, SAME, FOLDS, { higherIsSimilar: true, farTargets: [0] }), { name: 'RangeError', message: /options.farTargets/ });

  t.throws(() => rocSvg({ far: [0, 2], tar: [0, 1] }), { name: 'RangeError', code: 'E_INPUT', message: /numbers in \[0, 1\] for points.far\[1\]/ });
  t.throws(() => rocSvg({ far: [0, 1], tar: [0] }), { name: 'RangeError', message: /points.tar/ });
  t.throws(() => rocSvg([]), { name: 'RangeError' });
  await t.rejects(rocPng({ far: [0, 1], tar: [0, 1] }, { width: 10 }), { name: 'RangeError', message: /from 160 to 8192 for options.width but received number 10/ });
});

t.test('the tiny pairs file', async (t) => {
  const pairs = readLfwPairs(TINY);
  t.equal(pairs.folds, 2);
  t.equal(pairs.pairsPerFold, 2);
  t.same(pairs.pairs.map((p) => p.same), SAME);
  t.same(pairs.pairs.map((p) => p.fold), FOLDS);
  t.same(pairs.pairs[1], { fold: 0, same: true, a: { name: 'Bob', index: 1 }, b: { name: 'Bob', index: 3 } }, 'space separated');
  t.same(pairs.pairs[7], { fold: 1, same: false, a: { name: 'Dave', index: 3 }, b: { name: 'Frank', index: 2 } }, 'mixed separators');
  t.same(parseLfwPairs(fs.readFileSync(TINY, 'utf8').replace(/\n/g, '\r\n'), 'crlf').pairs, pairs.pairs, 'CRLF line ends');
  t.equal(lfwImagePath('/lfw', 'Bob', 3), path.join('/lfw', 'Bob', 'Bob_0003.jpg'));
  t.equal(lfwImagePath('/lfw', 'Bob', 12345), path.join('/lfw', 'Bob', 'Bob_12345.jpg'));
});

t.test('n-fold verification, hand-computed', async (t) => {
  // Held out fold 0, trained on fold 1 (sorted 1s 4d 5d 8s): candidate accuracies 0→.5, 2.5→.25,
  // 4.5→.5, 6.5→.75, 9→.5, so 6.5; on fold 0 it accepts 9 and rejects 6, 2, 3: 3/4.
  // Held out fold 1, trained on fold 0 (2d 3d 6s 9s): 4.5 separates it (1.0); on fold 1 it rejects
  // 1 (wrong), accepts 8, rejects 4, accepts 5 (wrong): 2/4.
  const r = evaluateVerification(SCORES, SAME, FOLDS, { higherIsSimilar: true, farTargets: [1e-3, 1e-2, 0.5, 1] });
  t.same(r.folds, [
    { fold: 0, threshold: 6.5, trainAccuracy: 0.75, accuracy: 0.75, pairs: 4 },
    { fold: 1, threshold: 4.5, trainAccuracy: 1, accuracy: 0.5, pairs: 4 },
  ]);
  t.equal(r.accuracyMean, 0.625);
  t.equal(r.accuracyStd, 0.125, 'population std (the sample std would be 0.177)');
  t.equal(r.thresholdMean, 5.5);
  // Matched {9, 8, 6, 1} above mismatched {5, 4, 3, 2} in 12 of 16 combinations.
  t.equal(r.auc, 0.75);
  t.same(Array.from(r.roc.far), [0, 0, 0, 0, 0.25, 0.5, 0.75, 1, 1]);
  t.same(Array.from(r.roc.tar), [0, 0.25, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75, 1]);
  t.same(Array.from(r.roc.thresholds), [Infinity, 9, 8, 6, 5, 4, 3, 2, 1]);
  t.same(r.tarAtFar, [
    { targetFar: 1e-3, far: 0, tar: 0.75, threshold: 6 },
    { targetFar: 1e-2, far: 0, tar: 0.75, threshold: 6 },
    { targetFar: 0.5, far: 0, tar: 0.75, threshold: 6 },
    { targetFar: 1, far: 1, tar: 1, threshold: 1 },
  ], 'largest TAR with FAR ≤ target, strictest threshold of equal TARs');

  // The same scores as distances: identical accuracies, thresholds negated.
  const d = evaluateVerification(SCORES.map((s) => -s), SAME, FOLDS, { higherIsSimilar: false });
  t.same(d.folds.map((f) => [f.threshold, f.accuracy]), [[-6.5, 0.75], [-4.5, 0.5]]);
  t.equal(d.thresholdMean, -5.5);
  t.equal(d.auc, 0.75);
  t.same(d.tarAtFar.map((x) => [x.tar, x.threshold]), [[0.75, -6], [0.75, -6]]);
  t.equal(d.roc.thresholds[0], -Infinity);

  // Equal training accuracy at two thresholds (4d 5s 7d 8s: 4.5 and 7.5 both 3/4): the strictest wins,
  // for similarities (7.5: accept above) and distances (-7.5: accept below) alike.
  const tieScores = [5, 8, 4, 7, 9, 6, 2, 3];
  t.equal(evaluateVerification(tieScores, SAME, FOLDS, { higherIsSimilar: true }).folds[1].threshold, 7.5);
  t.equal(evaluateVerification(tieScores.map((s) => -s), SAME, FOLDS, { higherIsSimilar: false }).folds[1].threshold, -7.5);

  // Tied scores count one half in the AUC.
  t.equal(evaluateVerification([3, 2, 2, 1], [true, true, false, false], [0, 0, 1, 1], { higherIsSimilar: true }).auc, 0.875);
  t.equal(evaluateVerification([1, 1, 1, 1], [true, false, true, false], [0, 0, 1, 1], { higherIsSimilar: true }).auc, 0.5);
  t.equal(evaluateVerification(new Float32Array([3, 2, 2, 1]), [true, true, false, false], [0, 0, 1, 1], { higherIsSimilar: true }).auc, 0.875, 'Float32Array scores');
});

t.test('n-fold verification against brute force', async (t) => {
  const rng = new SeededRandom(11);
  for (const higherIsSimilar of [true, false]) {
    const n = 240;
    const same = Array.from({ length: n }, (_, i) => i % 3 !== 0);
    // Rounded to 0.05 so that ties occur.
    const scores = same.map((s) => Math.round((rng.normal(s === higherIsSimilar ? 0.6 : 0.3, 0.2)) * 20) / 20);
    const folds = Array.from({ length: n }, (_, i) => i % 4);
    const r = evaluateVerification(scores, same, folds, { higherIsSimilar, farTargets: [0.05, 0.2] });
    const accept = (s: number, thr: number) => (higherIsSimilar ? s > thr : s < thr);
    for (const fold of [0, 1, 2, 3]) {
      const train = scores.map((_, i) => i).filter((i) => folds[i] !== fold);
      const values = [...new Set(train.map((i) => scores[i]))].sort((a, b) => a - b);
      const candidates = [values[0] - 1, ...values.slice(1).map((v, k) => (v + values[k]) / 2), values[values.length - 1] + 1];
      const accuracy = (thr: number, idx: number[]) => idx.filter((i) => accept(scores[i], thr) === same[i]).length / idx.length;
      const best = Math.max(...candidates.map((c) => accuracy(c, train)));
      const result = r.folds[fold];
      t.equal(result.trainAccuracy, best, `fold ${fold} (${higherIsSimilar ? 'similarity' : 'distance'}): best training accuracy`);
      t.ok(Math.abs(accuracy(result.threshold, train) - best) < 1e-12, `fold ${fold}: the chosen threshold reaches it`);
      const test = scores.map((_, i) => i).filter((i) => folds[i] === fold);
      t.ok(Math.abs(result.accuracy - accuracy(result.threshold, test)) < 1e-12, `fold ${fold}: held-out accuracy`);
    }
    // AUC as the Mann–Whitney statistic.
    let wins = 0;
    let pairs = 0;
    for (let i = 0; i < n; i++) {
      if (!same[i]) continue;
      for (let j = 0; j < n; j++) {
        if (same[j]) continue;
        const a = higherIsSimilar ? scores[i] : -scores[i];
        const b = higherIsSimilar ? scores[j] : -scores[j];
        wins += a > b ? 1 : a === b ? 0.5 : 0;
        pairs++;
      }
    }
    t.ok(Math.abs(r.auc - wins / pairs) < 1e-12, `AUC ${r.auc} = Mann–Whitney ${wins / pairs}`);
    // TAR@FAR by trying every score as the threshold (accept at ≥ / ≤).
    for (const x of r.tarAtFar) {
      let bestTar = 0;
      for (const thr of new Set(scores)) {
        const acc = (i: number) => (higherIsSimilar ? scores[i] >= thr : scores[i] <= thr);
        const far = same.filter((s, i) => !s && acc(i)).length / same.filter((s) => !s).length;
        const tar = same.filter((s, i) => s && acc(i)).length / same.filter((s) => s).length;
        if (far <= x.targetFar) bestTar = Math.max(bestTar, tar);
      }
      t.ok(Math.abs(x.tar - bestTar) < 1e-12 && x.far <= x.targetFar, `TAR@FAR ${x.targetFar}: ${x.tar}`);
    }
  }
});

t.test('the LFW View-2 pairs (shared data)', async (t) => {
  const file = dataPath(t, 'lfw/pairs.txt');
  const images = dataPath(t, 'lfw/images');
  if (!file || !images) return;
  const pairs = readLfwPairs(file);
  t.equal(pairs.folds, 5);
  t.equal(pairs.pairsPerFold, 300);
  t.equal(pairs.pairs.length, 3000);
  t.equal(pairs.pairs.filter((p) => p.same).length, 1500);
  t.equal(pairs.pairs.filter((p) => !p.same).length, 1500);
  for (let fold = 0; fold < 5; fold++) t.equal(pairs.pairs.filter((p) => p.fold === fold).length, 600, `fold ${fold}: 600 pairs`);
  const paths = new Set(pairs.pairs.flatMap((p) => [lfwImagePath(images, p.a.name, p.a.index), lfwImagePath(images, p.b.name, p.b.index)]));
  const missing = [...paths].filter((p) => !fs.existsSync(p));
  t.same(missing, [], `all ${paths.size} images exist`);
  t.equal(paths.size, 3811, 'the 3,811 images the README lists');
});

t.test('ROC chart', async (t) => {
  const r = evaluateVerification(SCORES, SAME, FOLDS, { higherIsSimilar: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facesight-roc-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'roc.png');
  const png = await rocPng([{ ...r.roc, label: 'tiny <model>' }, { far: [0, 1e-3, 1], tar: [0, 0.5, 1] }], { width: 500, height: 300, title: 'ROC & test', path: file });
  t.same(fs.readFileSync(file), png, 'written to options.path');
  const meta = await sharp(file).metadata();
  t.equal(meta.format, 'png');
  t.equal(meta.width, 500);
  t.equal(meta.height, 300);
  // The first curve's colour (#1f77b4) is drawn.
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let curvePixels = 0;
  for (let i = 0; i < data.length; i += info.channels) {
    if (Math.abs(data[i] - 0x1f) < 24 && Math.abs(data[i + 1] - 0x77) < 24 && Math.abs(data[i + 2] - 0xb4) < 24) curvePixels++;
  }
  t.ok(curvePixels > 100, `curve pixels drawn (${curvePixels})`);
  const svg = rocSvg(r.roc, { title: 'a < b' });
  t.match(svg, /a &lt; b/, 'the title is escaped');
  const defaultSize = await sharp(await rocPng(r.roc)).metadata();
  t.same([defaultSize.width, defaultSize.height], [640, 480], 'default size');
});

/**
 * LFW face verification: the View-2 pairs file, and the n-fold evaluation of pair scores.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FaceError, invalidRange, invalidType } from '../errors';

export { rocPng, rocSvg, type RocCurve, type RocPngOptions } from './roc';

export interface LfwImageRef {
  name: string;
  /** 1-based image number, as in the file names. */
  index: number;
}

export interface LfwPair {
  /** 0-based fold. */
  fold: number;
  same: boolean;
  a: LfwImageRef;
  b: LfwImageRef;
}

export interface LfwPairs {
  folds: number;
  pairsPerFold: number;
  /** Fold by fold, each fold's matched pairs then its mismatched pairs, as in the file. */
  pairs: LfwPair[];
}

/**
 * Parses an LFW View-2 pairs.txt: a header "folds pairsPerFold", then per fold pairsPerFold matched
 * lines "name i j" and pairsPerFold mismatched lines "name1 i name2 j" (tab or space separated).
 * `source` names the file in messages. Malformed input → FaceError E_INPUT naming file and line.
 */
export function parseLfwPairs(text: string, source: string): LfwPairs {
  if (typeof text !== 'string') throw invalidType('a string', 'text', text);
  if (typeof source !== 'string') throw invalidType('a string', 'source', source);
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop();
  const bad = (line: number, problem: string) => new FaceError('E_INPUT', `${source}:${line}: ${problem}`);
  const positive = (token: string) => (/^[0-9]+$/.test(token) && Number(token) > 0 && Number.isSafeInteger(Number(token)) ? Number(token) : undefined);

  if (lines.length === 0) throw bad(1, 'empty file (expected a header "folds pairsPerFold")');
  const header = lines[0].trim().split(/[\t ]+/);
  const folds = positive(header[0] ?? '');
  const pairsPerFold = positive(header[1] ?? '');
  if (header.length !== 2 || folds === undefined || pairsPerFold === undefined) {
    throw bad(1, `expected a header "folds pairsPerFold" (two positive integers) but found ${JSON.stringify(lines[0])}`);
  }
  const expectedLines = 1 + folds * 2 * pairsPerFold;
  // Lines are checked in order first, so a fold short of pairs is reported where it goes wrong.
  const truncated = () => {
    const fold = Math.min(folds - 1, Math.floor((lines.length - 1) / (2 * pairsPerFold)));
    return bad(lines.length + 1, `the file ends in fold ${fold + 1} of ${folds}: the header promises ${folds} folds × ${pairsPerFold} matched + ${pairsPerFold} mismatched pairs (${expectedLines} lines), found ${lines.length} lines`);
  };

  const image = (line: number, name: string, indexToken: string): LfwImageRef => {
    // Names become path components: keep them to one plain component.
    if (name === '.' || name === '..' || /[/\\]/.test(name)) throw bad(line, `invalid name ${JSON.stringify(name)}`);
    const index = positive(indexToken);
    if (index === undefined) throw bad(line, `expected a positive integer image number for ${name} but found ${JSON.stringify(indexToken)}`);
    return { name, index };
  };

  const pairs: LfwPair[] = [];
  for (let i = 1; i < expectedLines; i++) {
    if (i >= lines.length) throw truncated();
    const line = i + 1;
    const k = i - 1;
    const fold = Math.floor(k / (2 * pairsPerFold));
    const same = k % (2 * pairsPerFold) < pairsPerFold;
    const position = (k % pairsPerFold) + 1;
    const tokens = lines[i].trim().split(/[\t ]+/).filter((s) => s !== '');
    const expected = same ? `matched pair ${position} of ${pairsPerFold} ("name i j")` : `mismatched pair ${position} of ${pairsPerFold} ("name1 i name2 j")`;
    if (same && tokens.length === 4) throw bad(line, `fold ${fold + 1}: found a mismatched pair where ${expected} is expected (wrong pair count in this fold?)`);
    if (!same && tokens.length === 3) throw bad(line, `fold ${fold + 1}: found a matched pair where ${expected} is expected (wrong pair count in this fold?)`);
    if (tokens.length !== (same ? 3 : 4)) throw bad(line, `fold ${fold + 1}: expected ${expected} but found ${tokens.length} fields`);
    const a = image(line, tokens[0], tokens[1]);
    const b = same ? image(line, tokens[0], tokens[2]) : image(line, tokens[2], tokens[3]);
    pairs.push({ fold, same, a, b });
  }
  if (lines.length > expectedLines) throw bad(expectedLines + 1, `unexpected line after the ${folds * 2 * pairsPerFold} pairs the header promises`);
  return { folds, pairsPerFold, pairs };
}

/** Reads and parses a pairs file; messages name it by its base name. */
export function readLfwPairs(file: string): LfwPairs {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new FaceError('E_INPUT', `Cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  return parseLfwPairs(text, path.basename(file));
}

/** The image of (name, index) under an LFW image folder: root/name/name_0001.jpg. */
export function lfwImagePath(root: string, name: string, index: number): string {
  if (typeof root !== 'string') throw invalidType('a string', 'root', root);
  if (typeof name !== 'string' || name === '' || /[/\\]/.test(name)) throw invalidType('a person name (one path component)', 'name', name);
  if (!Number.isSafeInteger(index) || index < 1) throw invalidRange('a positive integer', 'index', index);
  return path.join(root, name, `${name}_${String(index).padStart(4, '0')}.jpg`);
}

export interface VerificationOptions {
  /** true for similarities (same person above the threshold), false for distances (below). */
  higherIsSimilar: boolean;
  /** FAR targets for the TAR@FAR figures; default [1e-3, 1e-2]. */
  farTargets?: number[];
}

export interface FoldResult {
  fold: number;
  /** Chosen on the other folds. */
  threshold: number;
  /** Accuracy on the other folds at that threshold. */
  trainAccuracy: number;
  /** Accuracy on this fold. */
  accuracy: number;
  pairs: number;
}

export interface TarAtFar {
  targetFar: number;
  /** The ROC point used: its FAR (≤ target), TAR and threshold. */
  far: number;
  tar: number;
  threshold: number;
}

export interface VerificationResult {
  folds: FoldResult[];
  accuracyMean: number;
  /** Population standard deviation of the fold accuracies (numpy's std, as LFW reports use). */
  accuracyStd: number;
  thresholdMean: number;
  auc: number;
  tarAtFar: TarAtFar[];
  /**
   * The ROC over all pairs, one point per distinct score, from (0, 0) to (1, 1): a pair is accepted
   * at `thresholds[i]` when its score is ≥ it (similarities) or ≤ it (distances). thresholds[0] is
   * ±Infinity (nothing accepted).
   */
  roc: { far: Float64Array; tar: Float64Array; thresholds: Float64Array };
}

function checkNumbers(value: unknown, what: string): ArrayLike<number> {
  if (!(Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView)))) throw invalidType('an array of numbers', what, value);
  const list = value as ArrayLike<unknown>;
  for (let i = 0; i < list.length; i++) {
    if (typeof list[i] !== 'number') throw invalidType('numbers', `${what}[${i}]`, list[i]);
  }
  return value as ArrayLike<number>;
}

/**
 * Sorted groups of equal scores with their counts of same / different pairs, oriented so that
 * "accepted" means similarity above: for distances the scores are negated.
 */
function groupScores(indices: number[], scores: ArrayLike<number>, same: readonly boolean[], sign: number): { values: number[]; same: number[]; diff: number[] } {
  const sorted = indices.slice().sort((a, b) => sign * scores[a] - sign * scores[b]);
  const values: number[] = [];
  const sameCount: number[] = [];
  const diffCount: number[] = [];
  for (const i of sorted) {
    const v = sign * scores[i];
    if (values.length === 0 || values[values.length - 1] !== v) {
      values.push(v);
      sameCount.push(0);
      diffCount.push(0);
    }
    if (same[i]) sameCount[sameCount.length - 1]++;
    else diffCount[diffCount.length - 1]++;
  }
  return { values, same: sameCount, diff: diffCount };
}

/**
 * The best threshold on `indices` (in the oriented space: accept when value > threshold).
 * Candidates: every midpoint between consecutive distinct scores, and one unit beyond each end.
 * Ties go to the strictest threshold (fewest pairs accepted), which is what taking the first
 * maximum over ascending distance thresholds does in the facenet / insightface code.
 */
function bestThreshold(indices: number[], scores: ArrayLike<number>, same: readonly boolean[], sign: number): { threshold: number; accuracy: number } {
  const groups = groupScores(indices, scores, same, sign);
  const totalSame = groups.same.reduce((a, b) => a + b, 0);
  const g = groups.values.length;
  // Candidate c (0..g) lies above groups 0..c-1: those are rejected, the rest accepted.
  let sameBelow = 0;
  let diffBelow = 0;
  let bestCorrect = -1;
  let bestCandidate = 0;
  for (let c = 0; c <= g; c++) {
    if (c > 0) {
      sameBelow += groups.same[c - 1];
      diffBelow += groups.diff[c - 1];
    }
    const correct = totalSame - sameBelow + diffBelow;
    if (correct >= bestCorrect) {
      bestCorrect = correct;
      bestCandidate = c;
    }
  }
  const v = groups.values;
  const threshold = bestCandidate === 0 ? v[0] - 1 : bestCandidate === g ? v[g - 1] + 1 : v[bestCandidate - 1] + (v[bestCandidate] - v[bestCandidate - 1]) / 2;
  return { threshold, accuracy: bestCorrect / indices.length };
}

/**
 * The n-fold verification protocol of LFW (as the facenet / insightface evaluations run it): for each
 * fold, the threshold that maximises accuracy on the other folds (searched over the midpoints between
 * all distinct scores, not a fixed grid) is applied to the held-out fold.
 *
 * Also computed over all pairs: the exact ROC and AUC (trapezoids over every distinct threshold; tied
 * scores form one step, i.e. count one half as in the Mann–Whitney statistic), and TAR at each FAR
 * target, taken as the largest TAR among thresholds whose FAR ≤ the target (no interpolation; of equal
 * TARs the strictest threshold is reported).
 *
 * `folds[i]` is pair i's fold (any integers; at least two distinct). Accuracy std is the population
 * std (numpy's default, what LFW results report).
 */
export function evaluateVerification(scores: Float64Array | Float32Array | number[], same: boolean[], folds: number[] | Int32Array, options: VerificationOptions): VerificationResult {
  const s = checkNumbers(scores, 'scores');
  if (!Array.isArray(same)) throw invalidType('an array of booleans', 'same', same);
  const f = checkNumbers(folds, 'folds');
  if (typeof options !== 'object' || options === null) throw invalidType('an object with higherIsSimilar', 'options', options);
  if (typeof options.higherIsSimilar !== 'boolean') throw invalidType('a boolean', 'options.higherIsSimilar', options.higherIsSimilar);
  const farTargets = options.farTargets ?? [1e-3, 1e-2];
  if (!Array.isArray(farTargets)) throw invalidType('an array of numbers', 'options.farTargets', farTargets);
  for (const target of farTargets) {
    if (typeof target !== 'number' || !(target > 0 && target <= 1)) throw invalidRange('numbers in (0, 1]', 'options.farTargets', target);
  }
  const n = s.length;
  if (same.length !== n) throw invalidRange(`an array of ${n} booleans (one per score)`, 'same', same);
  if (f.length !== n) throw invalidRange(`an array of ${n} fold numbers (one per score)`, 'folds', folds);
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(s[i])) throw invalidRange('finite numbers', `scores[${i}]`, s[i]);
    if (typeof same[i] !== 'boolean') throw invalidType('booleans', `same[${i}]`, same[i]);
    if (!Number.isSafeInteger(f[i])) throw invalidType('integers', `folds[${i}]`, f[i]);
  }
  const positives = same.filter(Boolean).length;
  if (positives === 0 || positives === n) throw invalidRange('both same and different pairs', 'same', same);
  const foldIds = [...new Set(Array.from(f))].sort((a, b) => a - b);
  if (foldIds.length < 2) throw invalidRange('at least two distinct folds', 'folds', folds);

  const sign = options.higherIsSimilar ? 1 : -1;
  const all = Array.from({ length: n }, (_, i) => i);
  const foldResults: FoldResult[] = foldIds.map((fold) => {
    const train = all.filter((i) => f[i] !== fold);
    const test = all.filter((i) => f[i] === fold);
    const best = bestThreshold(train, s, same, sign);
    let correct = 0;
    for (const i of test) if (sign * s[i] > best.threshold === same[i]) correct++;
    return { fold, threshold: sign * best.threshold, trainAccuracy: best.accuracy, accuracy: correct / test.length, pairs: test.length };
  });
  const accuracies = foldResults.map((r) => r.accuracy);
  const accuracyMean = accuracies.reduce((a, b) => a + b, 0) / accuracies.length;
  const accuracyStd = Math.sqrt(accuracies.reduce((a, b) => a + (b - accuracyMean) ** 2, 0) / accuracies.length);
  const thresholdMean = foldResults.reduce((a, r) => a + r.threshold, 0) / foldResults.length;

  // ROC: accept groups from the highest oriented score down.
  const groups = groupScores(all, s, same, sign);
  const g = groups.values.length;
  const negatives = n - positives;
  const far = new Float64Array(g + 1);
  const tar = new Float64Array(g + 1);
  const thresholds = new Float64Array(g + 1);
  thresholds[0] = sign * Infinity;
  let tp = 0;
  let fp = 0;
  for (let k = 1; k <= g; k++) {
    const group = g - k;
    tp += groups.same[group];
    fp += groups.diff[group];
    tar[k] = tp / positives;
    far[k] = fp / negatives;
    thresholds[k] = sign * groups.values[group];
  }
  let auc = 0;
  for (let k = 1; k <= g; k++) auc += ((far[k] - far[k - 1]) * (tar[k] + tar[k - 1])) / 2;

  const tarAtFar = farTargets.map((targetFar) => {
    let best = 0;
    for (let k = 1; k <= g && far[k] <= targetFar; k++) if (tar[k] > tar[best]) best = k;
    return { targetFar, far: far[best], tar: tar[best], threshold: thresholds[best] };
  });

  return { folds: foldResults, accuracyMean, accuracyStd, thresholdMean, auc, tarAtFar, roc: { far, tar, thresholds } };
}

/**
 * WIDER FACE detection evaluation: the official ground truth (.mat) and the official AP.
 *
 * `evaluateWiderFace` reproduces `widerface_evaluate/evaluation.py` (Pytorch_Retinaface, itself a port
 * of the MATLAB eval_tools) step for step, including its quirks, so that numbers compare with
 * published ones:
 * - scores are normalised over all predictions as (s - min) / (max - min), where min starts at 1 and
 *   max at 0 (so for scores inside [0, 1] these are the true extremes);
 * - 1000 score thresholds 1 - (t + 1) / 1000, t = 0..999;
 * - boxes are x, y, w, h; IoU uses x2 = x + w and "+1" pixel sizes: width x2 - x1 + 1 (Fast R-CNN's
 *   bbox_overlaps), so a w×h box counts as (w+1)×(h+1);
 * - predictions are taken in the order given (the official files are written sorted by descending
 *   score; give them that way): each one is matched to the gt box of highest IoU (first on ties); at
 *   IoU ≥ threshold, a match with a box outside this difficulty's gt_list makes the prediction
 *   ignored, else the box counts as recalled once (a second match of a recalled box is a false
 *   positive);
 * - precision at a threshold = recalled boxes / non-ignored predictions down to the last prediction
 *   scoring ≥ threshold; recall = recalled boxes / faces in the gt_lists;
 * - images without gt boxes or without predictions are skipped (their false positives do not count),
 *   but their gt_list faces are counted;
 * - AP is VOC's: area under the precision envelope at the recall change points.
 * One deviation: when every prediction has the same score, the official division by zero gives NaN;
 * here every normalised score is then 1.
 */
import * as path from 'node:path';
import { FaceError, invalidRange, invalidType } from '../errors';
import { readMat5File, type MatFile, type MatValue } from './mat5';

export type WiderDifficulty = 'easy' | 'medium' | 'hard';
export const WIDER_DIFFICULTIES: readonly WiderDifficulty[] = ['easy', 'medium', 'hard'];

export interface WiderImage {
  event: string;
  /** The file name without ".jpg", as in file_list. */
  name: string;
  /** "event/name", the key of predictions. */
  key: string;
  /** All annotated boxes, x y w h per row (row-major, 4 numbers a box). */
  boxes: Float64Array;
  /** Per difficulty, the 0-based indices of the boxes that count (gt_list minus 1). */
  keep: Record<WiderDifficulty, Int32Array>;
}

export interface WiderGroundTruth {
  /** Events in file order, each with its images in file order (the order the official loop uses). */
  events: { name: string; images: WiderImage[] }[];
  /** Every image by key. */
  images: Map<string, WiderImage>;
}

export interface WiderPrediction {
  box: readonly [number, number, number, number];
  score: number;
}

export interface WiderEvalOptions {
  /** Evaluate only these images ("event/name", ".jpg" optional), e.g. those of a subset; default all. */
  images?: Iterable<string>;
  /** Default 0.5. */
  iouThreshold?: number;
}

export interface WiderCurve {
  ap: number;
  /** Faces counted (gt_list entries of the evaluated images). */
  faces: number;
  /** Precision and recall at the 1000 thresholds, highest threshold first. */
  precision: Float64Array;
  recall: Float64Array;
}

export interface WiderEvalResult {
  easy: number;
  medium: number;
  hard: number;
  curves: Record<WiderDifficulty, WiderCurve>;
  /** Images evaluated. */
  images: number;
}

const THRESHOLD_COUNT = 1000;
const FILES = { all: 'wider_face_val.mat', easy: 'wider_easy_val.mat', medium: 'wider_medium_val.mat', hard: 'wider_hard_val.mat' } as const;

/** "0--Parade/0_Parade_marchingband_1_465.jpg" → "0--Parade/0_Parade_marchingband_1_465". */
export function widerKey(imagePath: string): string {
  return imagePath.replace(/\\/g, '/').replace(/\.jpg$/i, '');
}

function layoutError(file: string, where: string, expected: string): FaceError {
  return new FaceError('E_INPUT', `${file}: ${where} is not ${expected}; not a WIDER FACE ground-truth file`);
}

function cellOf(file: string, value: MatValue | undefined, where: string): MatValue[] {
  if (value === undefined || typeof value === 'string' || value.kind !== 'cell') throw layoutError(file, where, 'a cell array');
  return value.cells;
}

function stringOf(file: string, value: MatValue, where: string): string {
  if (typeof value !== 'string') throw layoutError(file, where, 'a char array');
  return value;
}

function numbersOf(file: string, value: MatValue, where: string): { dims: number[]; data: Float64Array } {
  if (typeof value === 'string' || value.kind !== 'numeric') throw layoutError(file, where, 'a numeric array');
  return value;
}

/** event_list and file_list of one file, checked for shape. */
function readIndex(file: string, mat: MatFile): { events: string[]; files: string[][] } {
  const events = cellOf(file, mat.variables.get('event_list'), 'event_list').map((v, i) => stringOf(file, v, `event_list{${i + 1}}`));
  const fileCells = cellOf(file, mat.variables.get('file_list'), 'file_list');
  if (fileCells.length !== events.length) throw layoutError(file, 'file_list', `a cell of ${events.length} (one per event)`);
  const files = fileCells.map((cell, i) => cellOf(file, cell, `file_list{${i + 1}}`).map((v, j) => stringOf(file, v, `file_list{${i + 1}}{${j + 1}}`)));
  return { events, files };
}

/**
 * Reads the official evaluation ground truth from `gtDir`: wider_face_val.mat (events, files, boxes)
 * and wider_{easy,medium,hard}_val.mat (gt_list). The four files must list the same images.
 */
export function loadWiderGroundTruth(gtDir: string): WiderGroundTruth {
  if (typeof gtDir !== 'string' || gtDir === '') throw invalidType('a folder path', 'gtDir', gtDir);
  const mats = {
    all: readMat5File(path.join(gtDir, FILES.all)),
    easy: readMat5File(path.join(gtDir, FILES.easy)),
    medium: readMat5File(path.join(gtDir, FILES.medium)),
    hard: readMat5File(path.join(gtDir, FILES.hard)),
  };
  const index = readIndex(FILES.all, mats.all);
  const boxCells = cellOf(FILES.all, mats.all.variables.get('face_bbx_list'), 'face_bbx_list');
  if (boxCells.length !== index.events.length) throw layoutError(FILES.all, 'face_bbx_list', `a cell of ${index.events.length} (one per event)`);

  const keepLists = {} as Record<WiderDifficulty, MatValue[][]>;
  for (const difficulty of WIDER_DIFFICULTIES) {
    const file = FILES[difficulty];
    const own = readIndex(file, mats[difficulty]);
    // The official code indexes the four files in parallel: they must agree image for image.
    own.files.forEach((names, i) => {
      if (own.events[i] !== index.events[i] || names.length !== index.files[i]?.length || names.some((n, j) => n !== index.files[i][j])) {
        throw new FaceError('E_INPUT', `${file}: event ${i + 1} (${own.events[i]}) does not list the same images as ${FILES.all}`);
      }
    });
    if (own.events.length !== index.events.length) throw new FaceError('E_INPUT', `${file}: ${own.events.length} events, ${FILES.all} has ${index.events.length}`);
    const lists = cellOf(file, mats[difficulty].variables.get('gt_list'), 'gt_list');
    if (lists.length !== index.events.length) throw layoutError(file, 'gt_list', `a cell of ${index.events.length} (one per event)`);
    keepLists[difficulty] = lists.map((cell, i) => cellOf(file, cell, `gt_list{${i + 1}}`));
  }

  const events: WiderGroundTruth['events'] = [];
  const images = new Map<string, WiderImage>();
  index.events.forEach((event, i) => {
    const boxList = cellOf(FILES.all, boxCells[i], `face_bbx_list{${i + 1}}`);
    const names = index.files[i];
    if (boxList.length !== names.length) throw layoutError(FILES.all, `face_bbx_list{${i + 1}}`, `a cell of ${names.length} (one per image)`);
    const eventImages: WiderImage[] = [];
    names.forEach((name, j) => {
      const where = `face_bbx_list{${i + 1}}{${j + 1}}`;
      const { dims, data } = numbersOf(FILES.all, boxList[j], where);
      const count = data.length === 0 ? 0 : dims[0];
      if (data.length !== 0 && (dims.length !== 2 || dims[1] !== 4)) throw layoutError(FILES.all, where, 'an n×4 matrix');
      // Column-major n×4 → row-major boxes.
      const boxes = new Float64Array(count * 4);
      for (let b = 0; b < count; b++) for (let c = 0; c < 4; c++) boxes[b * 4 + c] = data[b + count * c];
      const keep = {} as Record<WiderDifficulty, Int32Array>;
      for (const difficulty of WIDER_DIFFICULTIES) {
        const list = keepLists[difficulty][i];
        const keepWhere = `gt_list{${i + 1}}{${j + 1}}`;
        if (list.length !== names.length) throw layoutError(FILES[difficulty], `gt_list{${i + 1}}`, `a cell of ${names.length} (one per image)`);
        const indices = numbersOf(FILES[difficulty], list[j], keepWhere).data;
        keep[difficulty] = Int32Array.from(indices, (v) => {
          if (!Number.isInteger(v) || v < 1 || v > count) {
            throw new FaceError('E_INPUT', `${FILES[difficulty]}: ${keepWhere} holds index ${v}, outside 1..${count} (the boxes of ${event}/${name})`);
          }
          return v - 1;
        });
      }
      const image: WiderImage = { event, name, key: `${event}/${name}`, boxes, keep };
      if (images.has(image.key)) throw new FaceError('E_INPUT', `${FILES.all}: image ${image.key} is listed twice`);
      images.set(image.key, image);
      eventImages.push(image);
    });
    events.push({ name: event, images: eventImages });
  });
  return { events, images };
}

/**
 * The IoU of the official evaluation between two x y w h boxes: corners x1 = x, x2 = x + w, and
 * sizes x2 - x1 + 1 (so it differs from the plain IoU, most for small boxes).
 */
export function widerOverlap(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return overlap(a[0], a[1], a[0] + a[2], a[1] + a[3], b[0], b[1], b[0] + b[2], b[1] + b[3]);
}

// Same operation order as bbox_overlaps, so results agree to the last bit.
function overlap(px1: number, py1: number, px2: number, py2: number, gx1: number, gy1: number, gx2: number, gy2: number): number {
  const gtArea = (gx2 - gx1 + 1) * (gy2 - gy1 + 1);
  const iw = Math.min(px2, gx2) - Math.max(px1, gx1) + 1;
  if (!(iw > 0)) return 0;
  const ih = Math.min(py2, gy2) - Math.max(py1, gy1) + 1;
  if (!(ih > 0)) return 0;
  const union = (px2 - px1 + 1) * (py2 - py1 + 1) + gtArea - iw * ih;
  return (iw * ih) / union;
}

/** Validated predictions of one image: boxes row-major x y w h and normalised-later scores. */
interface ImagePredictions {
  boxes: Float64Array;
  scores: Float64Array;
}

function readPredictions(key: string, list: unknown): ImagePredictions {
  if (!Array.isArray(list)) throw invalidType('an array of { box, score }', `the predictions of ${key}`, list);
  const boxes = new Float64Array(list.length * 4);
  const scores = new Float64Array(list.length);
  list.forEach((p: unknown, i) => {
    const what = `predictions of ${key}[${i}]`;
    const box = (p as WiderPrediction | null)?.box;
    const score = (p as WiderPrediction | null)?.score;
    if (!Array.isArray(box) && !ArrayBuffer.isView(box)) throw invalidType('{ box: [x, y, w, h], score }', what, p);
    if ((box as ArrayLike<number>).length !== 4) throw invalidRange('a box of 4 numbers [x, y, w, h]', `${what}.box`, box);
    for (let c = 0; c < 4; c++) {
      const v = (box as ArrayLike<number>)[c];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidType('finite numbers', `${what}.box`, box);
      boxes[i * 4 + c] = v;
    }
    if (typeof score !== 'number' || !Number.isFinite(score)) throw invalidType('a finite number', `${what}.score`, score);
    scores[i] = score;
  });
  return { boxes, scores };
}

/**
 * The official image_eval + img_pr_info for one image and difficulty, added into `proposals` and
 * `recalled` (per threshold). `scores` are the normalised ones.
 */
function accumulateImage(pred: ImagePredictions, image: WiderImage, keep: Int32Array, iouThreshold: number, proposals: Float64Array, recalled: Float64Array): void {
  const n = pred.scores.length;
  const g = image.boxes.length / 4;
  const counts = new Uint8Array(g); // 1 where the box counts at this difficulty (the official `ignore`)
  for (const k of keep) counts[k] = 1;
  const recallState = new Int8Array(g); // 0 not yet, 1 recalled, -1 matched while not counting
  const proposalCount = new Float64Array(n); // non-ignored predictions among 0..h
  const recallCount = new Float64Array(n); // recalled boxes after prediction h
  let proposalsSoFar = 0;
  let recalledSoFar = 0;
  const gb = image.boxes;
  for (let h = 0; h < n; h++) {
    const x1 = pred.boxes[h * 4], y1 = pred.boxes[h * 4 + 1];
    const x2 = x1 + pred.boxes[h * 4 + 2], y2 = y1 + pred.boxes[h * 4 + 3];
    let best = -1;
    let bestIndex = 0;
    for (let k = 0; k < g; k++) {
      const gx1 = gb[k * 4], gy1 = gb[k * 4 + 1];
      const o = overlap(x1, y1, x2, y2, gx1, gy1, gx1 + gb[k * 4 + 2], gy1 + gb[k * 4 + 3]);
      if (o > best) {
        best = o;
        bestIndex = k;
      }
    }
    let ignored = false;
    if (best >= iouThreshold) {
      if (counts[bestIndex] === 0) {
        recallState[bestIndex] = -1;
        ignored = true;
      } else if (recallState[bestIndex] === 0) {
        recallState[bestIndex] = 1;
        recalledSoFar++;
      }
    }
    if (!ignored) proposalsSoFar++;
    proposalCount[h] = proposalsSoFar;
    recallCount[h] = recalledSoFar;
  }

  // For each threshold, the last prediction (in the given order) scoring ≥ it: walk the predictions
  // by descending score while the threshold falls, keeping the largest index seen.
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => pred.scores[b] - pred.scores[a] || a - b);
  let next = 0;
  let last = -1;
  for (let t = 0; t < THRESHOLD_COUNT; t++) {
    const threshold = 1 - (t + 1) / THRESHOLD_COUNT;
    while (next < n && pred.scores[order[next]] >= threshold) {
      last = Math.max(last, order[next]);
      next++;
    }
    if (last >= 0) {
      proposals[t] += proposalCount[last];
      recalled[t] += recallCount[last];
    }
  }
}

/** VOC AP: area under the precision envelope, summed where recall changes (as voc_ap). */
function vocAp(recall: Float64Array, precision: Float64Array): number {
  const n = recall.length + 2;
  const mrec = new Float64Array(n);
  const mpre = new Float64Array(n);
  mrec.set(recall, 1);
  mrec[n - 1] = 1;
  mpre.set(precision, 1);
  // Math.max propagates NaN as np.maximum does (a 0/0 precision at thresholds above every score).
  for (let i = n - 1; i > 0; i--) mpre[i - 1] = Math.max(mpre[i - 1], mpre[i]);
  let ap = 0;
  for (let i = 0; i + 1 < n; i++) if (mrec[i + 1] !== mrec[i]) ap += (mrec[i + 1] - mrec[i]) * mpre[i + 1];
  return ap;
}

/**
 * The official WIDER FACE AP (easy, medium, hard) of `predictions` ("event/name" → boxes x y w h with
 * scores, best first) against `gt`. Every evaluated image needs an entry (an empty array when nothing
 * was found), as the official code needs a file per image; entries for other images only take part
 * in the score normalisation, as files in the official prediction folder do.
 */
export function evaluateWiderFace(predictions: Map<string, readonly WiderPrediction[]>, gt: WiderGroundTruth, options: WiderEvalOptions = {}): WiderEvalResult {
  if (!(predictions instanceof Map)) throw invalidType('a Map from "event/name" to predictions', 'predictions', predictions);
  if (typeof gt !== 'object' || gt === null || !(gt.images instanceof Map) || !Array.isArray(gt.events)) throw invalidType('ground truth from loadWiderGroundTruth()', 'gt', gt);
  if (typeof options !== 'object' || options === null) throw invalidType('an object', 'options', options);
  const iouThreshold = options.iouThreshold ?? 0.5;
  if (typeof iouThreshold !== 'number' || !Number.isFinite(iouThreshold)) throw invalidType('a number', 'options.iouThreshold', iouThreshold);
  if (iouThreshold <= 0 || iouThreshold > 1) throw invalidRange('a number in (0, 1]', 'options.iouThreshold', iouThreshold);

  let selected: Set<string> | undefined;
  if (options.images !== undefined) {
    if (typeof options.images === 'string' || typeof (options.images as Iterable<string>)[Symbol.iterator] !== 'function') {
      throw invalidType('an iterable of "event/name" strings', 'options.images', options.images);
    }
    selected = new Set();
    for (const name of options.images) {
      if (typeof name !== 'string') throw invalidType('"event/name" strings', 'options.images', name);
      const key = widerKey(name);
      if (!gt.images.has(key)) throw new FaceError('E_INPUT', `options.images: ${name} is not an image of the ground truth`);
      selected.add(key);
    }
  }

  const parsed = new Map<string, ImagePredictions>();
  for (const [key, list] of predictions) {
    if (typeof key !== 'string') throw invalidType('"event/name" keys', 'predictions', key);
    const normalised = widerKey(key);
    if (parsed.has(normalised)) throw new FaceError('E_INPUT', `predictions: image ${normalised} appears twice`);
    parsed.set(normalised, readPredictions(key, list));
  }

  // norm_score: the extremes start at max 0, min 1, as in the official code.
  let max = 0;
  let min = 1;
  for (const p of parsed.values()) {
    for (const s of p.scores) {
      if (s > max) max = s;
      if (s < min) min = s;
    }
  }
  const range = max - min;
  for (const p of parsed.values()) for (let i = 0; i < p.scores.length; i++) p.scores[i] = range === 0 ? 1 : (p.scores[i] - min) / range;

  const evaluated: WiderImage[] = [];
  for (const event of gt.events) {
    for (const image of event.images) {
      if (selected && !selected.has(image.key)) continue;
      if (!parsed.has(image.key)) {
        throw new FaceError('E_INPUT', `predictions: no entry for ${image.key} (give an empty array for an image without detections${selected ? '' : ', or restrict options.images'})`);
      }
      evaluated.push(image);
    }
  }

  const curves = {} as Record<WiderDifficulty, WiderCurve>;
  for (const difficulty of WIDER_DIFFICULTIES) {
    const proposals = new Float64Array(THRESHOLD_COUNT);
    const recalled = new Float64Array(THRESHOLD_COUNT);
    let faces = 0;
    for (const image of evaluated) {
      const keep = image.keep[difficulty];
      faces += keep.length;
      const pred = parsed.get(image.key) as ImagePredictions;
      if (image.boxes.length === 0 || pred.scores.length === 0) continue;
      accumulateImage(pred, image, keep, iouThreshold, proposals, recalled);
    }
    const precision = new Float64Array(THRESHOLD_COUNT);
    const recall = new Float64Array(THRESHOLD_COUNT);
    for (let t = 0; t < THRESHOLD_COUNT; t++) {
      precision[t] = recalled[t] / proposals[t];
      recall[t] = recalled[t] / faces;
    }
    curves[difficulty] = { ap: vocAp(recall, precision), faces, precision, recall };
  }
  return { easy: curves.easy.ap, medium: curves.medium.ap, hard: curves.hard.ap, curves, images: evaluated.length };
}

// Reference detections (../shared/data/weights/reference_detections.txt) and comparing detections
// with them, shared by the converter and FaceEngine tests. Boxes here are x1 y1 x2 y2, landmarks 10
// values (five x, y).
export interface CornerFace {
  score: number;
  box: readonly number[];
  landmarks: readonly number[];
}

export interface ReferenceImage {
  file: string; // relative to the data folder
  width: number;
  height: number;
  faces: CornerFace[];
}

// The tolerances for a port of the published RetinaFace weights.
export const MIN_BOX_IOU = 0.95;
export const MAX_LANDMARK_PX = 1;
export const MAX_SCORE_DIFF = 0.01;

/** Plain IoU of two x1 y1 x2 y2 boxes (for comparisons, not NMS). */
export function iou(a: readonly number[], b: readonly number[]): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

export function parseReference(text: string): ReferenceImage[] {
  const images: ReferenceImage[] = [];
  let declared = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('## ')) {
      const m = /^## (\S+)\s+\((\d+)x(\d+), (\d+) detections/.exec(line);
      if (!m) throw new Error(`unexpected header: ${line}`);
      images.push({ file: m[1], width: Number(m[2]), height: Number(m[3]), faces: [] });
      declared = Number(m[4]);
      continue;
    }
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^\s*([\d.]+)\s+box((?:\s+-?[\d.]+){4})\s+lmk((?:\s+-?[\d.]+){10})\s*$/.exec(line);
    if (!m || images.length === 0) throw new Error(`unexpected line: ${line}`);
    const image = images[images.length - 1];
    image.faces.push({ score: Number(m[1]), box: m[2].trim().split(/\s+/).map(Number), landmarks: m[3].trim().split(/\s+/).map(Number) });
    if (image.faces.length > declared) throw new Error(`more faces than declared for ${image.file}`);
  }
  return images;
}

/** Matches each reference face to its best-IoU detection and checks the tolerances. */
export function compareWithReference(t: Tap.Test, found: readonly CornerFace[], reference: readonly CornerFace[], label: string): void {
  t.equal(found.length, reference.length, `${label}: ${reference.length} faces`);
  let worstIou = 1;
  let worstLandmark = 0;
  let worstScore = 0;
  const used = new Set<number>();
  for (const [r, ref] of reference.entries()) {
    let best = -1;
    let bestIou = -1;
    found.forEach((d, k) => {
      const v = iou(ref.box, d.box);
      if (v > bestIou) [best, bestIou] = [k, v];
    });
    if (best < 0) {
      t.fail(`${label}: reference face ${r} has no detection`);
      continue;
    }
    t.notOk(used.has(best), `${label}: face ${r} matched to a detection no other face matched`);
    used.add(best);
    const det = found[best];
    let landmarkError = 0;
    for (let p = 0; p < 5; p++) {
      landmarkError = Math.max(landmarkError, Math.hypot(det.landmarks[2 * p] - ref.landmarks[2 * p], det.landmarks[2 * p + 1] - ref.landmarks[2 * p + 1]));
    }
    const scoreDiff = Math.abs(det.score - ref.score);
    t.ok(bestIou >= MIN_BOX_IOU, `${label}: face ${r} box IoU ${bestIou.toFixed(4)} >= ${MIN_BOX_IOU}`);
    t.ok(landmarkError <= MAX_LANDMARK_PX, `${label}: face ${r} landmarks within ${landmarkError.toFixed(3)} px <= ${MAX_LANDMARK_PX}`);
    t.ok(scoreDiff <= MAX_SCORE_DIFF, `${label}: face ${r} score diff ${scoreDiff.toFixed(5)} <= ${MAX_SCORE_DIFF}`);
    worstIou = Math.min(worstIou, bestIou);
    worstLandmark = Math.max(worstLandmark, landmarkError);
    worstScore = Math.max(worstScore, scoreDiff);
  }
  t.comment(`${label}: worst IoU ${worstIou.toFixed(4)}, worst landmark ${worstLandmark.toFixed(3)} px, worst score diff ${worstScore.toFixed(5)}`);
}

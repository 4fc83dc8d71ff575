/** Small helpers on faces and embeddings that the engine, the database and the CLI share. */

/** The face with the largest box, or undefined for none (ties: the first). */
export function largestFace<T extends { box: { width: number; height: number } }>(faces: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const f of faces) if (!best || f.box.width * f.box.height > best.box.width * best.box.height) best = f;
  return best;
}

/** Euclidean distance of two embeddings of the same length. */
export function euclideanDistance(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; ++i) sum += (a[i] - b[i]) ** 2;
  return Math.sqrt(sum);
}

// Worker thread for test/faceapi-ssd.test.ts: runs face-api's SSD-MobileNetV1 (SsdMobilenetv1.locateFaces
// on tfjs's CPU backend, test/helpers/faceapi-oracle.ts) on photos and posts back, per photo, face-api's
// network input, the two raw tensors its outputLayer decodes, and its final detections. tfjs's CPU
// backend is single-threaded and takes ~9 s per 512 × 512 forward pass, so the test splits the photos
// over two of these workers.
//
// workerData: { manifest: string; files: string[] }; posts PhotoResult[] (or { error }).
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { faceApi, loadNet, type FaceApi, type Tf } from './faceapi-oracle';

const SIZE = 512;
const ANCHORS = 5118;

export interface SsdDetection {
  score: number;
  /** x, y, width, height in the original image's pixels (face-api's FaceDetection.box). */
  box: [number, number, number, number];
}

export interface SsdPhotoResult {
  file: string;
  width: number;
  height: number;
  /** face-api's input to the network (NetInput.toBatchTensor(512, false) / 127.5 − 1), NCHW [1, 3, 512, 512]. */
  input: Float32Array;
  /** predictionLayer's boxPredictions [1, 5118, 1, 4] and classPredictions [1, 5118, 3], as computed in locateFaces. */
  boxPredictions: Float32Array;
  classPredictions: Float32Array;
  /** locateFaces' result (default options: minConfidence 0.5, maxResults 100). */
  detections: SsdDetection[];
}

/**
 * face-api's locateFaces on one photo, capturing the two tensors outputLayer decodes: the outputs of
 * predictionLayer's two Concat kernels (the only Concats with 5118 rows), read from tfjs's engine as
 * the network computes them.
 */
export async function faceApiSsdOnPhoto(api: FaceApi, net: { locateFaces: (x: unknown) => Promise<unknown[]> }, file: string): Promise<SsdPhotoResult> {
  const tf = api.tf as Tf;
  const { data: pixels, info } = await sharp(file).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`${file}: ${info.channels} channels`);
  const image = tf.tensor3d(new Uint8Array(pixels), [info.height, info.width, 3], 'int32');

  // SsdMobilenetv1.forwardInput's input, as it computes it.
  const netInput = await api.toNetInput(image);
  const input = tf.tidy(() => Float32Array.from(tf.transpose(tf.sub(tf.div(netInput.toBatchTensor(SIZE, false), 127.5), 1), [0, 3, 1, 2]).dataSync())) as Float32Array;

  const engine = tf.engine();
  const runKernel = engine.runKernel;
  const captured: { shape: number[]; data: Float32Array }[] = [];
  engine.runKernel = function (name: string, inputs: unknown, attrs: unknown) {
    const out = runKernel.call(this, name, inputs, attrs);
    if (name === 'Concat' && out.shape[1] === ANCHORS) captured.push({ shape: [...out.shape], data: Float32Array.from(out.dataSync()) });
    return out;
  };
  let found: unknown[];
  try {
    found = await net.locateFaces(image);
  } finally {
    engine.runKernel = runKernel;
  }
  image.dispose();
  const [boxes, classes] = captured;
  if (captured.length !== 2 || boxes!.shape.join() !== `1,${ANCHORS},1,4` || classes!.shape.join() !== `1,${ANCHORS},3`) {
    throw new Error(`captured ${captured.map((c) => `[${c.shape.join(', ')}]`).join(' ')}, expected [1, ${ANCHORS}, 1, 4] and [1, ${ANCHORS}, 3]`);
  }
  const detections = (found as { score: number; box: { x: number; y: number; width: number; height: number } }[]).map((d) => ({
    score: d.score,
    box: [d.box.x, d.box.y, d.box.width, d.box.height] as [number, number, number, number],
  }));
  return { file, width: info.width, height: info.height, input, boxPredictions: boxes!.data, classPredictions: classes!.data, detections };
}

if (parentPort && workerData && typeof workerData === 'object' && 'files' in workerData) {
  const { manifest, files } = workerData as { manifest: string; files: string[] };
  const port = parentPort;
  (async () => {
    const api = await faceApi();
    const net = loadNet(api, new api.SsdMobilenetv1(), manifest);
    const results: SsdPhotoResult[] = [];
    for (const file of files) results.push(await faceApiSsdOnPhoto(api, net, file));
    net.dispose();
    port.postMessage(results, results.flatMap((r) => [r.input.buffer as ArrayBuffer, r.boxPredictions.buffer as ArrayBuffer, r.classPredictions.buffer as ArrayBuffer]));
  })().catch((error: Error) => port.postMessage({ error: error.stack ?? String(error) }));
}

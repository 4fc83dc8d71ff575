// FaceEngine: images in (paths, encoded bytes, raw frames), faces out, in source-image pixels.
//
// First the invalid inputs (options, corrupt/truncated/empty/huge images, bad raw frames): each is
// FaceError E_INPUT (or E_MODEL/E_STATE) with its message, and the engine still works afterwards.
// Then decoding (channels kept, EXIF orientation applied), and, on the shared data folder:
//   - reference_detections.txt's four photos through detect(): same count, box IoU >= 0.95,
//     landmarks within 1 px, scores within 0.01 (the tolerances of convert-retinaface.test.ts);
//   - the Solvay group photo gives >= 25 faces; the no-face photos give none;
//   - a batch (path, Buffer, raw frame) = the single calls; grey, RGB and RGBA frames agree;
//   - inputSize 640 (letterbox) on the group photo still finds >= 20 faces, mapped back to source
//     pixels (the best face IoU >= 0.8 with the original-size result).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { FaceError } from '../lib/errors';
import { devices } from '../lib/engine';
import { DEFAULT_DETECTOR, FaceEngine, type DetectedFace } from '../lib/pipeline/face-engine';
import { nativeConfig } from '../lib/pipeline/stages';
import { faceApiCacheKey, faceApiModelDir, loadFaceApiSsdAnchors } from '../lib/convert/faceapi';
import { resolveModelSpec } from '../lib/models/registry';
import * as crypto from 'node:crypto';
import type { SsdPhotoResult } from './helpers/faceapi-ssd-worker';
import { decodeImage, decodeImages } from '../lib/pipeline/image';
import { dataPath } from './helpers/data';
import { runFaceApiSsd } from './helpers/faceapi-ssd-run';
import { compareWithReference as compareCorners, iou, parseReference } from './helpers/detections';
import { expectRejects } from './helpers/assertions';

/** FaceEngine's faces as x1 y1 x2 y2 boxes and flat landmarks, for the shared comparison. */
function compareWithReference(t: Tap.Test, found: DetectedFace[], reference: { score: number; box: readonly number[]; landmarks: readonly number[] }[], label: string): void {
  compareCorners(t, found.map((f) => ({ score: f.score, box: corners(f), landmarks: f.landmarks.flatMap((p) => [p.x, p.y]) })), reference, label);
}
import { readTorchCheckpoint, toFloat32 } from '../lib/convert/torch-checkpoint';
import { buildRetinaFaceMnet025 } from '../lib/graphs/retinaface';

const THREADS = 2;
/** The RetinaFace blocks below name their detector (the default is face-api's SSD). */
const RETINA = 'retinaface-mnet025';

// ---------------------------------------------------------------------------------------------
// Helpers


function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, body: Uint8Array): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  const typed = Buffer.concat([Buffer.from(type, 'latin1'), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([head, typed, crc]);
}

/** A PNG signature + IHDR (8-bit RGB) of the given size, with correct CRCs; optionally a tiny IDAT + IEND. */
function pngHeader(width: number, height: number, withData: boolean): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  const parts = [Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), pngChunk('IHDR', ihdr)];
  if (withData) parts.push(pngChunk('IDAT', new Uint8Array([0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01])), pngChunk('IEND', new Uint8Array(0)));
  return Buffer.concat(parts);
}

function corners(f: DetectedFace): [number, number, number, number] {
  return [f.box.x, f.box.y, f.box.x + f.box.width, f.box.y + f.box.height];
}


/** Largest difference between two face lists of the same length (box corners, landmarks, score). */
function maxDifference(a: DetectedFace[], b: DetectedFace[]): number {
  let worst = 0;
  a.forEach((fa, k) => {
    const fb = b[k];
    const ca = corners(fa);
    const cb = corners(fb);
    for (let i = 0; i < 4; i++) worst = Math.max(worst, Math.abs(ca[i] - cb[i]));
    fa.landmarks.forEach((p, i) => (worst = Math.max(worst, Math.abs(p.x - fb.landmarks[i].x), Math.abs(p.y - fb.landmarks[i].y))));
    worst = Math.max(worst, Math.abs(fa.score - fb.score));
  });
  return worst;
}

function checkFaceShape(t: Tap.Test, faces: DetectedFace[], width: number, height: number, label: string): void {
  let ok = true;
  for (const f of faces) {
    ok &&= f.score >= 0 && f.score <= 1 && f.box.width > 0 && f.box.height > 0 && f.landmarks.length === 5;
    ok &&= f.box.x > -f.box.width && f.box.y > -f.box.height && f.box.x < width && f.box.y < height;
  }
  for (let k = 1; k < faces.length; k++) ok &&= faces[k - 1].score >= faces[k].score;
  t.ok(ok, `${label}: well-formed faces inside the ${width}×${height} image, by descending score`);
}


/** Raw 8-bit pixels of a file as sharp decodes it (orientation applied), with the given channel count. */
async function rawFrame(file: string, channels: 1 | 3 | 4) {
  let p = sharp(file).rotate();
  if (channels === 1) p = p.toColourspace('b-w');
  else if (channels === 3) p = p.toColourspace('srgb').removeAlpha();
  else p = p.toColourspace('srgb').ensureAlpha(1);
  const { data, info } = await p.raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== channels) throw new Error(`${file}: ${info.channels} channels, wanted ${channels}`);
  return { data, width: info.width, height: info.height, channels };
}

// One RetinaFace engine (default options otherwise) for the file, created on first use.
let shared: Promise<FaceEngine> | undefined;
function engine(): Promise<FaceEngine> {
  shared ??= FaceEngine.create({ threads: THREADS, detector: RETINA });
  return shared;
}
t.teardown(async () => {
  if (shared) (await shared.catch(() => undefined))?.dispose();
});

/** The default detector's weights exist (in the data folder); skips the test otherwise. */
function haveWeights(t: Tap.Test): boolean {
  return dataPath(t, 'weights/retinaface_mnet025.pth') !== undefined;
}

// ---------------------------------------------------------------------------------------------
// Invalid input

t.test('invalid input', async (t) => {
  t.test('options', async (t) => {
    const bad: [unknown, RegExp, ErrorConstructor][] = [
      ['fast', /^Expected an options object for FaceEngine\.create\(options\) but received "fast"$/, TypeError],
      [{ treshold: 0.5 }, /^Expected only the options device, precision, threads, detector, landmarks, embedder, alignment, anyRotation, flip, detection, limitInputPixels for FaceEngine\.create\(options\) but received an unknown option 'treshold'$/, RangeError],
      [{ device: 'gpu' }, /^Expected 'cpu', 'cuda' or 'auto' for options\.device but received "gpu"$/, TypeError],
      [{ precision: 'fp64' }, /^Expected 'fp32' or 'fp16' for options\.precision but received "fp64"$/, TypeError],
      [{ device: 'cpu', precision: 'fp16' }, /^Expected 'fp32' on the CPU \(fp16 runs on CUDA\) for options\.precision but received "fp16"$/, RangeError],
      [{ threads: 0 }, /^Expected an integer from 1 to 256 for options\.threads but received number 0$/, RangeError],
      [{ threads: '2' }, /^Expected an integer from 1 to 256 for options\.threads but received "2"$/, TypeError],
      [{ limitInputPixels: -1 }, /^Expected a positive integer \(pixels\) for options\.limitInputPixels but received number -1$/, RangeError],
      [{ detector: 42 }, /^Expected a model name or 'name=path' for options\.detector but received number 42$/, TypeError],
      [{ detector: 'nope' }, /^Expected a known model \(.*retinaface-mnet025.*\) or a descriptor file \(\.json\) for options\.detector but received "nope"$/, RangeError],
      [{ detector: 'retinaface-mnet025=' }, /^Expected a weights path after 'retinaface-mnet025=' for options\.detector/, RangeError],
      [{ detector: 'facenet-mobilenetv1' }, /^Expected a model of role 'detector' for options\.detector but received 'facenet-mobilenetv1' \(a model of role 'embedder'\)$/, RangeError],
      [{ detection: 0.5 }, /^Expected an object for options\.detection but received number 0\.5$/, TypeError],
      [{ detection: { threshhold: 0.5 } }, /^Expected only the options threshold, nmsThreshold, inputSize, minFaceSize, maxFaces, preNmsTopK for options\.detection but received an unknown option 'threshhold'$/, RangeError],
      [{ detection: { threshold: 1.5 } }, /^Expected a number from 0 to 1 for options\.detection\.threshold but received number 1\.5$/, RangeError],
      [{ detection: { threshold: NaN } }, /^Expected a number from 0 to 1 for options\.detection\.threshold but received number NaN$/, RangeError],
      [{ detection: { nmsThreshold: '0.4' } }, /^Expected a number from 0 to 1 for options\.detection\.nmsThreshold but received "0\.4"$/, TypeError],
      [{ detection: { inputSize: 641.5 } }, /^Expected 'original' or an integer from 32 to 8192 \(pixels\) for options\.detection\.inputSize but received number 641\.5$/, RangeError],
      [{ detection: { inputSize: 16 } }, /^Expected 'original' or an integer from 32 to 8192 \(pixels\) for options\.detection\.inputSize but received number 16$/, RangeError],
      [{ detection: { inputSize: 'full' } }, /^Expected 'original' or an integer from 32 to 8192 \(pixels\) for options\.detection\.inputSize but received "full"$/, RangeError],
      [{ detection: { inputSize: [640, 480] } }, /^Expected 'original' or an integer .* but received an array of length 2$/, TypeError],
      [{ detection: { minFaceSize: -1 } }, /^Expected a non-negative number \(pixels\) for options\.detection\.minFaceSize but received number -1$/, RangeError],
      [{ detection: { maxFaces: 2.5 } }, /^Expected a non-negative integer \(0 = no limit\) for options\.detection\.maxFaces but received number 2\.5$/, RangeError],
    ];
    for (const [options, message, kind] of bad) {
      await expectRejects(t, FaceEngine.create(options as never), 'E_INPUT', message, `FaceEngine.create(${JSON.stringify(options) ?? String(options)})`, kind);
    }

    // Weights that are not there: the user's path, and no data folder.
    await expectRejects(t, FaceEngine.create({ detector: 'retinaface-mnet025=/nonexistent/mnet.pth' }), 'E_MODEL',
      /^Cannot find the weights of detector 'retinaface-mnet025': no file at \/nonexistent\/mnet\.pth/, 'missing user weights');
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'facesight-noweights-'));
    const saved = process.env.FACESIGHT_DATA;
    process.env.FACESIGHT_DATA = empty;
    try {
      await expectRejects(t, FaceEngine.create({ detector: RETINA }), 'E_MODEL',
        /^No weights for detector 'retinaface-mnet025' \(none at .*retinaface_mnet025\.pth\)\. facesight does not ship these weights: get .*mobilenet0\.25_Final\.pth .* and give its path as options\.detector = 'retinaface-mnet025=\/path\/to\/mobilenet0\.25_Final\.pth', or set FACESIGHT_DATA/,
        'no weights anywhere');
    } finally {
      if (saved === undefined) delete process.env.FACESIGHT_DATA;
      else process.env.FACESIGHT_DATA = saved;
      fs.rmSync(empty, { recursive: true, force: true });
    }
    // Weights that are not a checkpoint.
    const junk = path.join(os.tmpdir(), `facesight-junk-${process.pid}.pth`);
    fs.writeFileSync(junk, 'not a checkpoint');
    t.teardown(() => fs.rmSync(junk, { force: true }));
    await expectRejects(t, FaceEngine.create({ detector: `retinaface-mnet025=${junk}` }), 'E_MODEL', /./, 'junk weights');
  });

  t.test('images', async (t) => {
    const hopper = dataPath(t, 'photos/grace_hopper_512x512.jpg');
    if (!hopper) return;
    const jpeg = fs.readFileSync(hopper);
    const huge = pngHeader(50_000, 50_000, true);
    // [input, code, message, kind]: each through decodeImage, and through engine.detect when there is one.
    const bad: [string, unknown, string, RegExp, ErrorConstructor?][] = [
      ['a truncated JPEG', jpeg.subarray(0, jpeg.length >> 1), 'E_INPUT', /^Cannot decode input \(Buffer of length \d+\): VipsJpeg: premature end of JPEG image/],
      ['an empty Buffer', Buffer.alloc(0), 'E_INPUT', /^Cannot decode input \(Buffer of length 0\): the data is empty \(0 bytes\)$/],
      ['a zero-width PNG', pngHeader(0, 16, true), 'E_INPUT', /^Cannot decode input \(Buffer of length \d+\): .*corrupt header/],
      ['a 50,000 × 50,000 PNG header', pngHeader(50_000, 50_000, false), 'E_INPUT', /^Cannot decode input \(Buffer of length 33\): .*corrupt header/],
      ['a 50,000 × 50,000 PNG', huge, 'E_INPUT', /^Cannot decode input \(Buffer of length \d+\): it is 50000 × 50000 = 2500000000 pixels, more than the limit of 100000000 \(a guard against decompression bombs; raise it with the option limitInputPixels\)$/],
      ['random bytes', Buffer.from('definitely not an image'), 'E_INPUT', /^Cannot decode input \(Buffer of length 23\): Input buffer contains unsupported image format$/],
      ['a missing file', '/nonexistent/face.jpg', 'E_INPUT', /^Cannot read image file '\/nonexistent\/face\.jpg' \(input\): ENOENT/],
      ['a number', 42, 'E_INPUT', /^Expected a file path, an encoded image \(Buffer or Uint8Array\) or a raw frame \{ data, width, height, channels \} for input but received number 42$/, TypeError],
      ['a frame with a short buffer', { data: new Uint8Array(29_999), width: 100, height: 100, channels: 3 }, 'E_INPUT', /^Expected 30000 bytes \(100×100×3\) for frame\.data but received 29999$/, RangeError],
      ['a frame with 2 channels', { data: new Uint8Array(20_000), width: 100, height: 100, channels: 2 }, 'E_INPUT', /^Expected 1 \(grey\), 3 \(RGB\) or 4 \(RGBA\) for frame\.channels but received number 2$/, RangeError],
      ['a frame with NaN width', { data: new Uint8Array(300), width: NaN, height: 10, channels: 3 }, 'E_INPUT', /^Expected a positive integer \(pixels\) for frame\.width but received number NaN$/, RangeError],
      ['a frame with zero height', { data: new Uint8Array(0), width: 10, height: 0, channels: 3 }, 'E_INPUT', /^Expected a positive integer \(pixels\) for frame\.height but received number 0$/, RangeError],
      ['a frame of floats', { data: new Float32Array(300), width: 10, height: 10, channels: 3 }, 'E_INPUT', /^Expected a Uint8Array, Buffer or Uint8ClampedArray of 8-bit pixels for frame\.data but received Float32Array of length 300$/, TypeError],
    ];
    for (const [what, input, code, message, kind] of bad) await expectRejects(t, decodeImage(input as never), code, message, `decodeImage: ${what}`, kind);
    await expectRejects(t, decodeImages([hopper, { data: new Uint8Array(5), width: 2, height: 2, channels: 1 }]), 'E_INPUT',
      /^Expected 4 bytes \(2×2×1\) for inputs\[1\]\.data but received 5$/, 'decodeImages names the input', RangeError);
    await expectRejects(t, decodeImages([hopper, jpeg.subarray(0, 1000)]), 'E_INPUT', /^Cannot decode inputs\[1\] \(Buffer of length 1000\)/, 'decodeImages: a truncated one');

    if (!haveWeights(t)) return;
    const e = await engine();
    for (const [what, input, code, message, kind] of bad) await expectRejects(t, e.detect(input as never), code, message, `detect: ${what}`, kind);
    await expectRejects(t, e.detect([hopper, { data: new Uint8Array(5), width: 2, height: 2, channels: 1 }]), 'E_INPUT', /for inputs\[1\]\.data/, 'detect([...]) names the input', RangeError);
    await expectRejects(t, e.detect([hopper, jpeg.subarray(0, 1000)]), 'E_INPUT', /^Cannot decode inputs\[1\]/, 'detect([...]) with a truncated one');
    const faces = await e.detect(hopper);
    t.equal(faces.length, 1, 'the engine still works afterwards: one face on grace_hopper');
    t.same(await e.detect([]), [], 'an empty batch gives an empty list');
  });

  t.test('after dispose', async (t) => {
    if (!haveWeights(t)) return;
    const e = await FaceEngine.create({ threads: 1, detector: RETINA });
    e.dispose();
    e.dispose();
    t.pass('dispose twice is fine');
    await expectRejects(t, e.detect(Buffer.alloc(1)), 'E_STATE', /^The face engine has been disposed$/, 'detect after dispose');
  });
});

// ---------------------------------------------------------------------------------------------
// Decoding

t.test('decoding keeps 1, 3 or 4 channels and applies the EXIF orientation', async (t) => {
  const grey = await decodeImage(await sharp({ create: { width: 5, height: 4, channels: 3, background: '#404040' } }).toColourspace('b-w').png().toBuffer());
  t.same([grey.width, grey.height, grey.channels, grey.data.length], [5, 4, 1, 20], 'grey PNG: 1 channel');
  const grey16 = await decodeImage(await sharp({ create: { width: 5, height: 4, channels: 3, background: '#808080' } }).toColourspace('grey16').png().toBuffer());
  t.same([grey16.channels, grey16.data.length, grey16.data[0]], [1, 20, 128], '16-bit grey PNG: 1 channel of 8 bits');
  const greyAlpha = await decodeImage(await sharp({ create: { width: 5, height: 4, channels: 4, background: { r: 90, g: 90, b: 90, alpha: 0.5 } } }).toColourspace('b-w').png().toBuffer());
  t.same([greyAlpha.channels, greyAlpha.data[0]], [1, 90], 'grey + alpha PNG: the grey channel');
  const rgba = await decodeImage(await sharp({ create: { width: 5, height: 4, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 0.5 } } }).png().toBuffer());
  t.same([rgba.channels, ...rgba.data.subarray(0, 4)], [4, 255, 0, 0, 128], 'RGBA PNG: 4 channels');
  const cmyk = await decodeImage(await sharp({ create: { width: 5, height: 4, channels: 3, background: '#ff8000' } }).toColourspace('cmyk').jpeg().toBuffer());
  t.equal(cmyk.channels, 3, 'CMYK JPEG: RGB');
  t.ok(cmyk.data[0] > 200 && cmyk.data[2] < 60, `CMYK JPEG: orange stays orange (${[...cmyk.data.subarray(0, 3)]})`);

  // A 6 × 2 image stored with EXIF orientation 6 (display rotated 90° clockwise): decoded 2 × 6.
  const pixels = Buffer.alloc(6 * 2 * 3);
  for (let i = 0; i < 12; i++) pixels.fill(i * 20, i * 3, i * 3 + 3);
  const tagged = await sharp(pixels, { raw: { width: 6, height: 2, channels: 3 } }).withMetadata({ orientation: 6 }).jpeg({ quality: 100 }).toBuffer();
  const upright = await decodeImage(tagged);
  t.same([upright.width, upright.height], [2, 6], 'EXIF orientation 6: width and height swap');
  // Rotated clockwise, the stored top-left pixel (0) lands top-right; the bottom-left (120) top-left.
  t.ok(Math.abs(upright.data[0] - 120) <= 12 && Math.abs(upright.data[3] - 0) <= 12, `EXIF orientation 6: rotated clockwise (${upright.data[0]}, ${upright.data[3]})`);

  const frame = { data: new Uint8ClampedArray(2 * 3 * 3).fill(7), width: 2, height: 3, channels: 3 as const };
  const used = await decodeImage(frame);
  t.ok(used.data instanceof Uint8Array && used.data.buffer === frame.data.buffer, 'a raw Uint8ClampedArray frame is used in place');

  const camera = dataPath(t, 'photos/skimage_camera.png');
  if (!camera) return;
  const decoded = await decodeImage(camera);
  t.same([decoded.width, decoded.height, decoded.channels], [512, 512, 1], 'skimage_camera.png: 512 × 512 grey');
  const many = await decodeImages([camera, fs.readFileSync(camera), frame], { concurrency: 2 });
  t.same(many.map((f) => f.channels), [1, 1, 3], 'decodeImages: in order');
});

// ---------------------------------------------------------------------------------------------
// Detection on the data folder

t.test('reference detections through detect()', async (t) => {
  const refFile = dataPath(t, 'weights/reference_detections.txt');
  if (!refFile || !haveWeights(t)) return;
  const reference = parseReference(fs.readFileSync(refFile, 'utf8'));
  t.equal(reference.length, 4, 'four reference images');
  const e = await engine();
  t.same(e.detection, { threshold: 0.5, nmsThreshold: 0.4, inputSize: 'original', minFaceSize: 0, maxFaces: 0, preNmsTopK: 0 }, "the descriptor's defaults");
  for (const image of reference) {
    const file = dataPath(t, image.file);
    if (!file) continue;
    const started = Date.now();
    const faces = await e.detect(file);
    t.comment(`${image.file}: ${faces.length} faces in ${Date.now() - started} ms`);
    checkFaceShape(t, faces, image.width, image.height, image.file);
    compareWithReference(t, faces, image.faces, image.file);
  }
});

t.test('a RetinaFace ONNX exported by another tool (other output names) is used as it is', async (t) => {
  const weights = dataPath(t, 'weights/retinaface_mnet025.pth');
  const photo = dataPath(t, 'photos/grace_hopper_512x512.jpg');
  if (!weights || !photo) return;
  // Pytorch_Retinaface's export script names only the first output: the detector must recognise
  // the three by their last dim (4, 2, 10), not by name.
  const tensors = readTorchCheckpoint(fs.readFileSync(weights));
  const onnx = buildRetinaFaceMnet025({
    weights: (key) => { const w = tensors.get(key); return w && { data: toFloat32(w), dims: w.dims }; },
    outputNames: ['output0', '590', '591'],
  });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'facesight-onnx-')), 'retinaface-exported.onnx');
  fs.writeFileSync(file, onnx);
  const exported = await FaceEngine.create({ threads: THREADS, detector: `${RETINA}=${file}` });
  const [a, b] = [await exported.detect(photo), await (await engine()).detect(photo)];
  exported.dispose();
  t.equal(a.length, 1, 'one face');
  t.same(a, b, 'the same faces as the converted checkpoint');
});

t.test('group photo and photos without faces', async (t) => {
  const group = dataPath(t, 'photos/group_solvay1927.jpg');
  const photos = dataPath(t, 'photos');
  if (!group || !photos || !haveWeights(t)) return;
  const e = await engine();
  const faces = await e.detect(group);
  t.ok(faces.length >= 25, `group_solvay1927.jpg: ${faces.length} faces >= 25`);
  checkFaceShape(t, faces, 2048, 922, 'group_solvay1927.jpg');
  const noface = fs.readdirSync(photos).filter((f) => f.startsWith('noface_')).sort();
  t.ok(noface.length >= 4, `${noface.length} no-face photos`);
  const lists = await e.detect(noface.map((f) => path.join(photos, f)));
  lists.forEach((list, k) => t.equal(list.length, 0, `${noface[k]}: no faces`));
});

t.test('a batch of a path, a Buffer and a raw frame = the single calls', async (t) => {
  const astronaut = dataPath(t, 'photos/skimage_astronaut.png');
  const hopper = dataPath(t, 'photos/grace_hopper_512x512.jpg');
  const messi = dataPath(t, 'photos/opencv_messi5.jpg');
  if (!astronaut || !hopper || !messi || !haveWeights(t)) return;
  const e = await engine();
  const inputs = [astronaut, fs.readFileSync(hopper), await rawFrame(messi, 3)] as const;
  const batch = await e.detect([...inputs]);
  t.equal(batch.length, 3, 'three lists');
  const concurrent = await Promise.all(inputs.map((input) => e.detect(input)));
  for (const [k, input] of inputs.entries()) {
    const single = await e.detect(input);
    t.equal(batch[k].length, single.length, `input ${k}: ${single.length} faces both ways`);
    t.ok(single.length >= 1, `input ${k}: at least one face`);
    if (batch[k].length === single.length) {
      const diff = maxDifference(batch[k], single);
      t.ok(diff <= 1e-3, `input ${k}: batch = single (max difference ${diff.toExponential(2)})`);
    }
    t.ok(concurrent[k].length === single.length && maxDifference(concurrent[k], single) <= 1e-3, `input ${k}: three calls at once = one at a time`);
  }
});

t.test('grey, RGB and RGBA frames of one photo give the same faces', async (t) => {
  const camera = dataPath(t, 'photos/skimage_camera.png');
  const astronaut = dataPath(t, 'photos/skimage_astronaut.png');
  if (!camera || !astronaut || !haveWeights(t)) return;
  const e = await engine();
  const fromFile = await e.detect(camera);
  t.equal(fromFile.length, 1, 'skimage_camera.png (grey PNG): one face');
  const [grey, rgb] = await e.detect([await rawFrame(camera, 1), await rawFrame(camera, 3)]);
  t.equal(grey.length, 1, 'grey frame: one face');
  t.equal(rgb.length, 1, 'the same grey as an RGB frame: one face');
  if (grey.length === 1 && rgb.length === 1 && fromFile.length === 1) {
    t.ok(maxDifference(grey, rgb) <= 1e-3, `grey = RGB (max difference ${maxDifference(grey, rgb).toExponential(2)})`);
    t.ok(maxDifference(grey, fromFile) <= 1e-3, 'grey frame = the file');
  }
  const [rgb2, rgba] = await e.detect([await rawFrame(astronaut, 3), await rawFrame(astronaut, 4)]);
  t.equal(rgba.length, rgb2.length, `astronaut: RGBA ${rgba.length} faces, RGB ${rgb2.length}`);
  if (rgba.length === rgb2.length) t.ok(maxDifference(rgb2, rgba) <= 1e-3, `RGB = RGBA (max difference ${maxDifference(rgb2, rgba).toExponential(2)})`);
});

t.test('inputSize 640 (letterbox) on the group photo', async (t) => {
  const group = dataPath(t, 'photos/group_solvay1927.jpg');
  if (!group || !haveWeights(t)) return;
  const full = await (await engine()).detect(group);
  const small = await FaceEngine.create({ threads: THREADS, detector: RETINA, detection: { inputSize: 640 } });
  t.teardown(() => small.dispose());
  t.equal(small.detection.inputSize, 640, 'inputSize 640');
  const faces = await small.detect(group);
  t.ok(faces.length >= 20, `${faces.length} faces >= 20 at 640 × 640`);
  checkFaceShape(t, faces, 2048, 922, 'letterboxed');
  t.ok(Math.max(...faces.map((f) => f.box.x + f.box.width)) > 1500, 'boxes are in source pixels (faces found beyond x = 1500 of 2048)');
  t.ok(Math.max(...faces.map((f) => f.box.y + f.box.height)) < 922 + 30, 'no box far below the image (the bars are not counted)');
  // Each face's best IoU with the original-size faces: the faces are ~18 px in the 640 × 288
  // content, so boxes differ by a pixel or two there (~5 px in the source), but a wrong mapping
  // back (scale, or the 176 px bars) would leave no overlap at all.
  const ious = faces.map((f) => Math.max(...full.map((g) => iou(corners(f), corners(g))))).sort((a, b) => a - b);
  t.comment(`IoU with the original-size faces: min ${ious[0].toFixed(3)}, median ${ious[ious.length >> 1].toFixed(3)}, max ${ious[ious.length - 1].toFixed(3)}`);
  t.ok(ious[ious.length - 1] >= 0.8, `one face matches the original-size result: IoU ${ious[ious.length - 1].toFixed(3)} >= 0.8`);
  const matched = ious.filter((v) => v >= 0.5).length;
  t.ok(matched >= 20, `${matched} faces overlap an original-size face by IoU >= 0.5 (>= 20)`);
});

t.test('maxFaces and minFaceSize', async (t) => {
  const group = dataPath(t, 'photos/group_solvay1927.jpg');
  const hopper = dataPath(t, 'photos/grace_hopper_512x512.jpg');
  if (!group || !hopper || !haveWeights(t)) return;
  const full = await (await engine()).detect(group);
  const few = await FaceEngine.create({ threads: THREADS, detector: RETINA, detection: { maxFaces: 5, minFaceSize: 100 } });
  t.teardown(() => few.dispose());
  const [groupFaces, hopperFaces] = await few.detect([group, hopper]);
  t.equal(groupFaces.length, 0, 'group photo: no face is 100 px (its faces are ~60 px)');
  t.equal(hopperFaces.length, 1, 'grace_hopper: its 182 px face is kept');
  const top = await FaceEngine.create({ threads: THREADS, detector: RETINA, detection: { maxFaces: 5 } });
  t.teardown(() => top.dispose());
  const five = await top.detect(group);
  t.equal(five.length, 5, 'maxFaces 5: five faces');
  t.ok(five.length === 5 && maxDifference(five, full.slice(0, 5)) <= 1e-3, 'the five best of the full result');
});

// ---------------------------------------------------------------------------------------------
// The default detector: face-api's SSD-MobileNetV1, from the @vladmandic/face-api package.
//
// Compared with face-api's own final detections (SsdMobilenetv1.locateFaces on tfjs, the oracle of
// test/faceapi-ssd.test.ts, run in worker threads): the same count, box corners within 0.5 px, scores
// within 1e-3 (the issue's tolerances). face-api's results are cached in the temp folder, keyed by
// the weights and the photo's bytes (tfjs's CPU backend takes ~9 s per photo).

const SSD_MAX_BOX_PX = 0.5;
const SSD_MAX_SCORE_DIFF = 1e-3;
const SSD_PHOTOS = [
  'grace_hopper_512x512.jpg',
  'skimage_astronaut.png',
  'opencv_messi5.jpg', // wider than tall: padded at the bottom
  'human_person-vlado5.jpg', // taller than wide: padded at the right
];

// The default engine, created on first use; its rejection says why SSD detection is unavailable.
let sharedSsd: Promise<FaceEngine> | undefined;
function ssdEngine(): Promise<FaceEngine> {
  sharedSsd ??= FaceEngine.create({ threads: THREADS });
  return sharedSsd;
}
t.teardown(async () => {
  if (sharedSsd) (await sharedSsd.catch(() => undefined))?.dispose();
});

type FaceApiDetections = Pick<SsdPhotoResult, 'file' | 'width' | 'height' | 'detections'>;

/** face-api's detections on the photos: from the cache, else from tfjs in (at most) two workers. */
async function faceApiDetections(files: string[]): Promise<FaceApiDetections[]> {
  const key = await faceApiCacheKey('ssd');
  const cacheFile = (file: string) =>
    path.join(os.tmpdir(), `facesight-faceapi-ssd-oracle-${crypto.createHash('sha256').update(key).update(fs.readFileSync(file)).digest('hex').slice(0, 32)}.json`);
  const results = new Map<string, FaceApiDetections>();
  for (const file of files) {
    try {
      const cached = JSON.parse(fs.readFileSync(cacheFile(file), 'utf8')) as FaceApiDetections;
      results.set(file, { ...cached, file });
    } catch {
      // Not cached yet.
    }
  }
  const missing = files.filter((f) => !results.has(f));
  const manifest = path.join(faceApiModelDir(), 'ssd_mobilenetv1_model-weights_manifest.json');
  const computed = [await runFaceApiSsd(manifest, missing)];
  for (const r of computed.flat()) {
    const entry = { file: r.file, width: r.width, height: r.height, detections: r.detections };
    results.set(r.file, entry);
    fs.writeFileSync(cacheFile(r.file), JSON.stringify(entry));
  }
  return files.map((f) => results.get(f)!);
}

t.test('SSD (the default detector): settings, without the native detector', async (t) => {
  t.equal(DEFAULT_DETECTOR, 'faceapi-ssd', "the default detector is face-api's SSD");
  const descriptor = resolveModelSpec('faceapi-ssd').descriptor;
  const anchors = await loadFaceApiSsdAnchors();
  const detection = { threshold: 0.5, nmsThreshold: 0.5, inputSize: { width: 512, height: 512 }, minFaceSize: 0, maxFaces: 100, preNmsTopK: 0 };
  const config = nativeConfig(descriptor, detection, anchors);
  t.same(
    { ...config, anchors: undefined, minSizes: undefined, steps: undefined, variances: undefined, clip: undefined },
    {
      inputWidth: 512, inputHeight: 512, decoder: 'ssd', resizeMode: 'pad-square', padValue: [0, 0, 0], colorOrder: 'RGB',
      mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5],
      anchors: undefined, minSizes: undefined, steps: undefined, variances: undefined, clip: undefined,
      ssd: { scaleXY: 10, scaleWH: 5, yxOrder: true, scoreStride: 3, scoreIndex: 1, scoreSigmoid: true },
      scoreThreshold: 0.5, nmsThreshold: 0.5, nmsPlusOne: false, maxFaces: 100, preNmsTopK: 0, minFaceSize: 0,
      inputName: 'input', boxesOutput: 'box_encodings', scoresOutput: 'scores', landmarksOutput: '',
    },
    "native config: face-api's pre- and post-processing",
  );
  t.ok(config.anchors === anchors && config.anchors.length === 5118 * 4, 'native config: the 5118 anchors from the weights');
  const retina = nativeConfig(resolveModelSpec(RETINA).descriptor, { threshold: 0.5, nmsThreshold: 0.4, inputSize: 640, minFaceSize: 0, maxFaces: 0, preNmsTopK: 0 });
  t.same([retina.decoder, retina.resizeMode, retina.padValue, retina.nmsPlusOne, retina.anchors.length, retina.landmarksOutput, retina.inputWidth], ['retinaface', 'letterbox', [128, 128, 128], true, 0, 'landms', 640],
    'RetinaFace native config: letterbox on grey 128, NMS with +1, landmarks');

  await expectRejects(t, FaceEngine.create({ detection: { inputSize: 'original' } }), 'E_INPUT',
    /^Expected the network's size 512 \(it takes 512 × 512 only\) for options\.detection\.inputSize but received "original"$/, 'SSD: inputSize original', RangeError);
  await expectRejects(t, FaceEngine.create({ detection: { inputSize: 640 } }), 'E_INPUT', /^Expected the network's size 512/, 'SSD: inputSize 640', RangeError);
});

t.test("device: 'auto' picks where the whole pipeline can run; 'cuda' says why it cannot", async (t) => {
  const cuda = devices().find((d) => d.name === 'cuda');
  const auto = await FaceEngine.create({ device: 'auto', precision: 'fp16', threads: 1 });
  // The shipped defaults (SSD decoder, 68-point landmarks) are CPU-only stages: 'auto' stays on the CPU.
  t.same([auto.device, auto.precision], ['cpu', 'fp32'], "'auto' with the SSD detector: CPU, fp32");
  auto.dispose();
  await expectRejects(t, FaceEngine.create({ device: 'cuda', threads: 1 }), 'E_DEVICE',
    cuda?.available ? /decodes on the CPU only/ : /CUDA is not usable here/, "'cuda' with the SSD detector");
});

t.test('SSD (the default detector) equals face-api on photos', async (t) => {
  const files: string[] = [];
  for (const photo of SSD_PHOTOS) {
    const file = dataPath(t, `photos/${photo}`);
    if (!file) return;
    files.push(file);
  }
  const e = await ssdEngine();
  t.same(e.detector.name, 'faceapi-ssd', 'the default engine runs faceapi-ssd');
  t.match(e.detector.weights, /@vladmandic[\\/]face-api[\\/]model[\\/]ssd_mobilenetv1_model-weights_manifest\.json$/, "from the package's weights");
  t.same(e.detection, { threshold: 0.5, nmsThreshold: 0.5, inputSize: { width: 512, height: 512 }, minFaceSize: 0, maxFaces: 100, preNmsTopK: 0 }, "face-api's defaults");

  const expected = await faceApiDetections(files);
  const found = await e.detect(files);
  expected.forEach((ref, k) => {
    const name = path.basename(ref.file);
    const faces = found[k];
    t.equal(faces.length, ref.detections.length, `${name}: ${ref.detections.length} faces, as face-api`);
    t.ok(faces.every((f) => f.landmarks.length === 5 && f.landmarks68?.length === 68), `${name}: 68 landmarks and the five points from them (the default engine's landmark net)`);
    checkFaceShape(t, faces, ref.width, ref.height, name);
    // Pair each of face-api's detections with the nearest unused face (by corner distance).
    const used = new Set<number>();
    let worstPx = 0;
    let worstScore = 0;
    for (const d of ref.detections) {
      const want = [d.box[0], d.box[1], d.box[0] + d.box[2], d.box[1] + d.box[3]];
      let best = -1;
      let bestPx = Infinity;
      faces.forEach((f, i) => {
        if (used.has(i)) return;
        const px = Math.max(...corners(f).map((v, c) => Math.abs(v - want[c])));
        if (px < bestPx) [best, bestPx] = [i, px];
      });
      if (best < 0) {
        t.fail(`${name}: face-api's face at (${want.map((v) => v.toFixed(1)).join(', ')}) has no match`);
        continue;
      }
      used.add(best);
      worstPx = Math.max(worstPx, bestPx);
      worstScore = Math.max(worstScore, Math.abs(faces[best].score - d.score));
    }
    t.ok(worstPx <= SSD_MAX_BOX_PX, `${name}: box corners within ${worstPx.toExponential(2)} px <= ${SSD_MAX_BOX_PX}`);
    t.ok(worstScore <= SSD_MAX_SCORE_DIFF, `${name}: scores within ${worstScore.toExponential(2)} <= ${SSD_MAX_SCORE_DIFF}`);
  });
});

t.test('SSD (the default detector): photos without faces, as face-api', async (t) => {
  const photos = dataPath(t, 'photos');
  if (!photos) return;
  const noface = fs.readdirSync(photos).filter((f) => f.startsWith('noface_')).sort();
  t.ok(noface.length >= 4, `${noface.length} no-face photos`);
  const files = noface.map((f) => path.join(photos, f));
  const [lists, expected] = await Promise.all([(await ssdEngine()).detect(files), faceApiDetections(files)]);
  // face-api itself finds a "face" on the cat (noface_skimage_chelsea_cat.png): the same count as
  // face-api is the contract; the others have none.
  lists.forEach((list, k) => t.equal(list.length, expected[k].detections.length, `${noface[k]}: ${list.length} faces, face-api ${expected[k].detections.length}`));
  t.same(noface.filter((_, k) => expected[k].detections.length > 0), ['noface_skimage_chelsea_cat.png'], 'face-api finds faces on the cat photo only');
});

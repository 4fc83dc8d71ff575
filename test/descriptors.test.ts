// Model descriptors (models/*.json) and the registry: every shipped descriptor validates and agrees
// with its graph; broken descriptors each give a precise E_MODEL message; model specs ('name',
// 'name=path', 'my.json=my.onnx') resolve, and unknown names list the known ones.
import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FaceError } from '../lib/errors';
import { parseDescriptor, type ModelDescriptor } from '../lib/models/descriptor';
import { dataDir, knownModels, locateWeights, modelsDir, resolveModelSpec } from '../lib/models/registry';
import { convertModel } from '../lib/convert/index';
import { buildRetinaFaceMnet025 } from '../lib/graphs/retinaface';
import { buildMobileFaceNet, MOBILEFACENET_EMBEDDING_SIZE } from '../lib/graphs/mobilefacenet';
import { buildFaceNetMobileNetV1, FACENET_EMBEDDING_SIZE, FACENET_INPUT_SIZE } from '../lib/graphs/facenet';
import { buildFaceApiSsd, FACEAPI_SSD_DEFAULTS } from '../lib/graphs/faceapi-ssd';
import { buildFaceApiRecognition } from '../lib/graphs/faceapi-recognition';
import { buildFaceApiLandmarks68 } from '../lib/graphs/faceapi-landmarks';
import { faceApiModelDir } from '../lib/convert/faceapi';
import { readOnnxGraph } from './helpers/onnx-reader';
import { dataPath, repoRoot } from './helpers/data';

const SHIPPED = ['faceapi-landmarks68', 'faceapi-recognition', 'faceapi-ssd', 'facenet-mobilenetv1', 'mobilefacenet', 'retinaface-mnet025'];
/** Those whose weights ship in the @vladmandic/face-api dependency. */
const WEIGHTS_SHIPPED = ['faceapi-landmarks68', 'faceapi-recognition', 'faceapi-ssd'];

function raw(name: string): Record<string, any> {
  return JSON.parse(fs.readFileSync(path.join(repoRoot, 'models', `${name}.json`), 'utf8'));
}

function expectModelError(t: Tap.Test, fn: () => unknown, message: RegExp | string, what: string): void {
  try {
    fn();
    t.fail(`${what}: expected an error`);
  } catch (error) {
    t.ok(error instanceof FaceError && (error as FaceError).code === 'E_MODEL', `${what}: a FaceError E_MODEL (got ${String(error)})`);
    if (typeof message === 'string') t.equal((error as Error).message, message, `${what}: message`);
    else t.match((error as Error).message, message, `${what}: message`);
  }
}

/** A copy of a shipped descriptor with one change, parsed as 'broken.json'. */
function broken(base: string, change: (d: Record<string, any>) => void): () => ModelDescriptor {
  const d = raw(base);
  change(d);
  return () => parseDescriptor(d, 'broken.json');
}

function tempDir(t: Tap.Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facesight-models-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('invalid input', async (t) => {
  const cases: [string, string, (d: Record<string, any>) => void, string | RegExp][] = [
    ['missing field', 'mobilefacenet', (d) => delete d.input.mean, "Missing field 'input.mean' (an array of 3 numbers) in broken.json"],
    ['missing top-level field', 'retinaface-mnet025', (d) => delete d.weights, "Missing field 'weights' (an object) in broken.json"],
    ['missing defaultThreshold (null is allowed, absence is not)', 'facenet-mobilenetv1', (d) => delete d.embedding.defaultThreshold,
      "Missing field 'embedding.defaultThreshold' (a number, or null when not calibrated) in broken.json"],
    ['wrong type', 'mobilefacenet', (d) => (d.input.size.height = '112'), 'Expected a positive integer for input.size.height in broken.json but received "112"'],
    ['wrong type (threshold)', 'facenet-mobilenetv1', (d) => (d.embedding.defaultThreshold = '1.1'), 'Expected a number for embedding.defaultThreshold in broken.json but received "1.1"'],
    ['wrong type (object)', 'retinaface-mnet025', (d) => (d.decoder = [1]), 'Expected an object for decoder in broken.json but received an array of length 1'],
    ['bad enum', 'mobilefacenet', (d) => (d.input.colorOrder = 'RGBA'), "Expected one of 'RGB', 'BGR' for input.colorOrder in broken.json but received \"RGBA\""],
    ['bad enum (role)', 'mobilefacenet', (d) => (d.role = 'recognizer'), "Expected one of 'detector', 'landmarks', 'embedder' for role in broken.json but received \"recognizer\""],
    ['bad enum (decoder kind)', 'retinaface-mnet025', (d) => (d.decoder = { kind: 'yolo', aspectRatios: [1, 2] }), "Expected one of 'retinaface', 'ssd' for decoder.kind in broken.json but received \"yolo\""],
    ['a RetinaFace field on an SSD decoder', 'faceapi-ssd', (d) => (d.decoder.steps = [8]), "Unknown field 'decoder.steps' in broken.json (the fields of decoder are: kind, scaleXY, scaleWH, yxOrder, scoreStride, scoreIndex, scoreSigmoid, anchors)"],
    ['SSD scoreIndex past scoreStride', 'faceapi-ssd', (d) => (d.decoder.scoreIndex = 3), 'Expected an integer from 0 to 2 (below decoder.scoreStride) for decoder.scoreIndex in broken.json but received number 3'],
    ['SSD anchors from elsewhere', 'faceapi-ssd', (d) => (d.decoder.anchors = 'grid'), "Expected one of 'weights' for decoder.anchors in broken.json but received \"grid\""],
    ['bad resize', 'faceapi-ssd', (d) => (d.input.size.resize = 'crop'), "Expected one of 'letterbox', 'stretch', 'pad-square' for input.size.resize in broken.json but received \"crop\""],
    ['negative maxFaces', 'faceapi-ssd', (d) => (d.detection.maxFaces = -1), 'Expected a non-negative integer (0 = no limit) for detection.maxFaces in broken.json but received number -1'],
    ['shipped without a package', 'faceapi-ssd', (d) => delete d.weights.package, "Missing field 'weights.package' (the npm package holding shipped weights) in broken.json"],
    ['shipped file leaving the package', 'faceapi-ssd', (d) => (d.weights.file = '../x.json'), "Expected a relative '/'-separated path inside the package for weights.file in broken.json but received \"../x.json\""],
    ['package on weights not shipped', 'mobilefacenet', (d) => (d.weights.package = 'x'), "Unexpected field 'weights.package' in broken.json: it applies to shipped weights (weights.shipped true) only"],
    ['bad enum (metric)', 'facenet-mobilenetv1', (d) => (d.embedding.metric = 'l2'), "Expected one of 'euclidean', 'cosine' for embedding.metric in broken.json but received \"l2\""],
    ['template with 4 points', 'mobilefacenet', (d) => d.alignment.template.pop(), 'Expected an array of 5 [x, y] points for alignment.template in broken.json but received an array of length 4'],
    ['template point with 3 coordinates', 'mobilefacenet', (d) => d.alignment.template[2].push(0), 'Expected an [x, y] pair of numbers for alignment.template[2] in broken.json but received an array of length 3'],
    ['template point outside the crop', 'mobilefacenet', (d) => (d.alignment.template[1] = [96.5, 51.5]), 'Expected a point inside the 96 × 112 crop for alignment.template[1] in broken.json but received [96.5, 51.5]'],
    ['68-point template of the wrong length', 'faceapi-recognition', (d) => d.alignment.template.pop(), 'Expected an array of 51 [x, y] points for alignment.template in broken.json but received an array of length 50'],
    ['firstPoint on a five-point template', 'mobilefacenet', (d) => (d.alignment.firstPoint = 17), "Unexpected field 'alignment.firstPoint' in broken.json: it applies to points 'landmarks68' only"],
    ['firstPoint past the 68', 'faceapi-recognition', (d) => (d.alignment.firstPoint = 67), 'Expected an integer from 0 to 66 for alignment.firstPoint in broken.json but received number 67'],
    ['bad enum (points)', 'mobilefacenet', (d) => (d.alignment.points = 'seven'), "Expected one of 'five', 'landmarks68' for alignment.points in broken.json but received \"seven\""],
    ['negative size', 'mobilefacenet', (d) => (d.input.size.width = -96), 'Expected a positive integer for input.size.width in broken.json but received number -96'],
    ['fractional size', 'facenet-mobilenetv1', (d) => (d.input.size.height = 159.5), 'Expected a positive integer for input.size.height in broken.json but received number 159.5'],
    ['zero std', 'retinaface-mnet025', (d) => (d.input.std[1] = 0), 'Expected a positive number for input.std[1] in broken.json but received number 0'],
    ['mean of 4', 'retinaface-mnet025', (d) => d.input.mean.push(0), 'Expected an array of 3 numbers for input.mean in broken.json but received an array of length 4'],
    ['negative scale', 'retinaface-mnet025', (d) => (d.input.size.scale = -1), 'Expected a positive number for input.size.scale in broken.json but received number -1'],
    ['threshold above 1', 'retinaface-mnet025', (d) => (d.detection.nmsThreshold = 1.5), 'Expected a number from 0 to 1 for detection.nmsThreshold in broken.json but received number 1.5'],
    ['steps not matching minSizes', 'retinaface-mnet025', (d) => d.decoder.steps.pop(), 'Expected an array of 3 strides (one per entry of decoder.minSizes) for decoder.steps in broken.json but received an array of length 2'],
    ['empty anchor level', 'retinaface-mnet025', (d) => (d.decoder.minSizes[1] = []), 'Expected a non-empty array of positive numbers for decoder.minSizes[1] in broken.json but received an array of length 0'],
    ['unknown field', 'mobilefacenet', (d) => (d.input.colour = 'RGB'), "Unknown field 'input.colour' in broken.json (the fields of input are: name, layout, colorOrder, size, mean, std)"],
    ['field of another role', 'mobilefacenet', (d) => (d.decoder = raw('retinaface-mnet025').decoder),
      "Unexpected field 'decoder' in broken.json: it applies to role 'detector' only, and this model's role is 'embedder'"],
    ['missing output role', 'retinaface-mnet025', (d) => delete d.outputs.scores, "Missing field 'outputs.scores' (the name of the graph output holding scores) in broken.json"],
    ['output role of another model role', 'facenet-mobilenetv1', (d) => (d.outputs.boxes = 'loc'), "Unknown field 'outputs.boxes' in broken.json (the fields of outputs are: embedding)"],
    ['crop size not the input size', 'mobilefacenet', (d) => (d.alignment.width = 112),
      'The aligned crop (alignment.width × alignment.height = 112 × 112) must be the input size (input.size = 96 × 112) in broken.json'],
    ['scale on a fixed size', 'facenet-mobilenetv1', (d) => (d.input.size.scale = 1), "Unexpected field 'input.size.scale' in broken.json: scale applies to size kind 'any' only"],
    ['bad name', 'mobilefacenet', (d) => (d.name = 'Mobile=FaceNet'), /^Expected a lowercase identifier .* for name in broken\.json but received "Mobile=FaceNet"$/],
    ['bad checksum', 'mobilefacenet', (d) => (d.weights.sha256 = 'E839'), 'Expected a SHA-256 digest (64 lowercase hex digits) for weights.sha256 in broken.json but received "E839"'],
    ['dataPath leaving the data folder', 'mobilefacenet', (d) => (d.weights.dataPath = '../secret.ckpt'),
      "Expected a relative '/'-separated path inside the data folder for weights.dataPath in broken.json but received \"../secret.ckpt\""],
    ['unknown converter', 'facenet-mobilenetv1', (d) => (d.weights.converter = 'facenet-inception'),
      "Expected one of 'retinaface-mnet025', 'facenet-mobilenetv1', 'mobilefacenet', 'faceapi-ssd', 'faceapi-recognition', 'faceapi-landmarks68' for weights.converter in broken.json but received \"facenet-inception\""],
    ['converter for ONNX weights', 'facenet-mobilenetv1', (d) => (d.weights.format = 'onnx'),
      "Expected null (weights in format 'onnx' need no converter) for weights.converter in broken.json but received \"facenet-mobilenetv1\""],
  ];
  for (const [what, base, change, message] of cases) expectModelError(t, broken(base, change), message, what);

  expectModelError(t, () => parseDescriptor('{"name": "x",', 'models/x.json'), /^models\/x\.json is not valid JSON: /, 'not JSON');
  expectModelError(t, () => parseDescriptor([], 'models/x.json'), 'Expected an object for the descriptor in models/x.json but received an array of length 0', 'an array');
  expectModelError(t, () => parseDescriptor(null, 'models/x.json'), 'Expected an object for the descriptor in models/x.json but received null', 'null');
});

t.test('every shipped descriptor validates', async (t) => {
  const files = fs.readdirSync(path.join(repoRoot, 'models')).filter((f) => f.endsWith('.json')).sort();
  t.same(files, SHIPPED.map((n) => `${n}.json`), 'models/ holds the six descriptors');
  for (const file of files) {
    const d = parseDescriptor(fs.readFileSync(path.join(repoRoot, 'models', file), 'utf8'), `models/${file}`);
    t.equal(`${d.name}.json`, file, `${file}: name matches the file`);
    t.ok(Object.isFrozen(d) && Object.isFrozen(d.input) && Object.isFrozen(d.input.mean), `${file}: frozen`);
    t.same(d, parseDescriptor(raw(d.name), file), `${file}: text and parsed JSON give the same descriptor`);
  }
  t.equal(modelsDir, path.join(repoRoot, 'models'), 'the registry reads the package root models/ folder');
  t.same(knownModels().map((d) => d.name), SHIPPED, 'knownModels() lists them by name');

  const [facenet, mobilefacenet, retina] = ['facenet-mobilenetv1', 'mobilefacenet', 'retinaface-mnet025'].map((n) => knownModels().find((d) => d.name === n)!);
  t.same(retina.decoder, { kind: 'retinaface', minSizes: [[16, 32], [64, 128], [256, 512]], steps: [8, 16, 32], variances: [0.1, 0.2], clip: false }, 'RetinaFace: cfg_mnet anchors');
  t.same(retina.detection, { scoreThreshold: 0.5, nmsThreshold: 0.4 }, 'RetinaFace: demo thresholds');
  t.same(retina.input.size, { kind: 'any', scale: 1 }, 'RetinaFace: any size');
  t.same([retina.input.colorOrder, retina.input.mean, retina.input.std], ['BGR', [104, 117, 123], [1, 1, 1]], 'RetinaFace: BGR minus (104, 117, 123)');
  t.equal(facenet.embedding?.defaultThreshold, null, 'FaceNet: threshold not calibrated yet (issue #5)');
  t.same([mobilefacenet.embedding?.metric, mobilefacenet.embedding?.defaultThreshold], ['euclidean', 1.19], 'MobileFaceNet: Euclidean, threshold calibrated on LFW');
  t.same(mobilefacenet.alignment, {
    kind: 'similarity',
    template: [[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366], [33.5493, 92.3655], [62.7299, 92.2041]],
    points: 'five',
    firstPoint: 0,
    width: 96,
    height: 112,
  }, 'MobileFaceNet: the SphereFace 96×112 template');
  t.same([mobilefacenet.input.mean, mobilefacenet.input.std], [[127.5, 127.5, 127.5], [128, 128, 128]], 'MobileFaceNet: (x − 127.5) / 128');
  t.same(knownModels().filter((d) => d.weights.shipped).map((d) => d.name), WEIGHTS_SHIPPED, "only face-api's weights are shipped");
  for (const name of WEIGHTS_SHIPPED) {
    const d = knownModels().find((m) => m.name === name)!;
    t.same([d.weights.format, d.weights.package, d.weights.converter], ['tfjs', '@vladmandic/face-api', name], `${name}: tfjs weights in @vladmandic/face-api, its converter`);
    const at = locateWeights(d);
    t.same(at, { present: true, path: path.join(faceApiModelDir(), path.basename(d.weights.file!)), origin: 'package' }, `${name}: located in the installed package`);
  }
  const ssd = knownModels().find((d) => d.name === 'faceapi-ssd')!;
  t.same(ssd.decoder, { kind: 'ssd', scaleXY: 10, scaleWH: 5, yxOrder: true, scoreStride: 3, scoreIndex: 1, scoreSigmoid: true, anchors: 'weights' }, 'face-api SSD: its decoding');
  t.same(ssd.detection, { scoreThreshold: FACEAPI_SSD_DEFAULTS.minConfidence, nmsThreshold: FACEAPI_SSD_DEFAULTS.iouThreshold, maxFaces: FACEAPI_SSD_DEFAULTS.maxResults }, "face-api SSD: face-api's defaults");
  t.same([ssd.input.size, ssd.input.mean, ssd.input.std, ssd.input.colorOrder], [{ kind: 'fixed', width: 512, height: 512, resize: 'pad-square', padColor: [0, 0, 0] }, [127.5, 127.5, 127.5], [127.5, 127.5, 127.5], 'RGB'], 'face-api SSD: 512 pad-square, RGB / 127.5 − 1');
  const recognition = knownModels().find((d) => d.name === 'faceapi-recognition')!;
  t.same(recognition.embedding, { size: 128, normalize: false, metric: 'euclidean', defaultThreshold: 0.43 }, 'face-api recognition: 128-d Euclidean, threshold calibrated on LFW for unit vectors');
  t.equal(mobilefacenet.weights.converter, 'mobilefacenet', 'MobileFaceNet: its converter');
  const chip = recognition.alignment;
  t.ok(chip?.kind === 'similarity' && chip.points === 'landmarks68' && chip.firstPoint === 17 && chip.template.length === 51 && chip.width === 150,
    "face-api recognition: dlib's face chip, landmarks 17–67 onto the mean face");
  // dlib's get_face_chip_details(shape, 150, 0.25): point = (0.25 + mean) / 1.5 · 150; mean face point 17 = (0.000213256, 0.106454).
  t.same(chip?.kind === 'similarity' && chip.template[0], [25.0213, 35.6454], "face-api recognition: the template's first point from dlib's mean face");
});

t.test('descriptors agree with the graphs the converters build', async (t) => {
  const retina = resolveModelSpec('retinaface-mnet025').descriptor;
  const retinaGraph = readOnnxGraph(buildRetinaFaceMnet025());
  t.same(retinaGraph.inputs, [retina.input.name], 'RetinaFace: input name');
  t.same(retinaGraph.outputs, [retina.outputs.boxes, retina.outputs.scores, retina.outputs.landmarks], 'RetinaFace: output names (boxes, scores, landmarks)');
  const facenet = resolveModelSpec('facenet-mobilenetv1').descriptor;
  const facenetGraph = readOnnxGraph(buildFaceNetMobileNetV1());
  t.same(facenetGraph.inputs, [facenet.input.name], 'FaceNet: input name');
  t.same(facenetGraph.outputs, [facenet.outputs.embedding], 'FaceNet: output name');
  t.equal(facenet.embedding?.size, FACENET_EMBEDDING_SIZE, 'FaceNet: embedding size');
  t.same(facenet.input.size, { kind: 'fixed', width: FACENET_INPUT_SIZE, height: FACENET_INPUT_SIZE, resize: 'letterbox', padColor: [128, 128, 128] }, 'FaceNet: 160×160 letterbox on grey');
  const mobile = resolveModelSpec('mobilefacenet').descriptor;
  const mobileGraph = readOnnxGraph(buildMobileFaceNet());
  t.same(mobileGraph.inputs, [mobile.input.name], 'MobileFaceNet: input name');
  t.same(mobileGraph.outputs, [mobile.outputs.embedding], 'MobileFaceNet: output name');
  t.equal(mobile.embedding?.size, MOBILEFACENET_EMBEDDING_SIZE, 'MobileFaceNet: embedding size');
  const graphs: [string, Uint8Array][] = [['faceapi-ssd', buildFaceApiSsd()], ['faceapi-recognition', buildFaceApiRecognition()], ['faceapi-landmarks68', buildFaceApiLandmarks68()]];
  for (const [name, bytes] of graphs) {
    const d = resolveModelSpec(name).descriptor;
    const g = readOnnxGraph(bytes);
    t.same(g.inputs, [d.input.name], `${name}: input name`);
    t.same([...g.outputs].sort(), Object.values(d.outputs).sort(), `${name}: output names`);
  }
});

t.test('test weights are where the descriptors say, with their checksums', async (t) => {
  for (const name of SHIPPED) {
    const d = resolveModelSpec(name).descriptor;
    if (!d.weights.dataPath) continue;
    const full = dataPath(t, d.weights.dataPath);
    if (!full) continue;
    const at = locateWeights(d);
    t.same(at, { present: true, path: full, origin: 'data' }, `${name}: located under the data folder`);
    if (d.weights.sha256) t.equal(crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex'), d.weights.sha256, `${name}: sha256`);
  }
});

t.test('model specs', async (t) => {
  const plain = resolveModelSpec('retinaface-mnet025');
  t.equal(plain.descriptor.name, 'retinaface-mnet025');
  t.equal(plain.weightsPath, undefined, "'name': no weights path");
  t.equal(plain.descriptorPath, path.join(repoRoot, 'models', 'retinaface-mnet025.json'));
  const withPath = resolveModelSpec('retinaface-mnet025=weights/x=1.pth');
  t.equal(withPath.weightsPath, path.resolve('weights/x=1.pth'), "'name=path': the path after the first '=', resolved");

  t.throws(() => resolveModelSpec('retinaface'), {
    name: 'RangeError',
    code: 'E_INPUT',
    message: 'Expected a known model (faceapi-landmarks68, faceapi-recognition, faceapi-ssd, facenet-mobilenetv1, mobilefacenet, retinaface-mnet025) or a descriptor file (.json) for the model but received "retinaface"',
  }, 'unknown name: E_INPUT listing the known names');
  t.throws(() => resolveModelSpec('retinaface-mnet025='), { code: 'E_INPUT', message: /^Expected a weights path after 'retinaface-mnet025=' for the model but received "retinaface-mnet025="$/ }, "'name=' without a path");
  t.throws(() => resolveModelSpec('=w.pth'), { code: 'E_INPUT', message: /^Expected a model name or 'name=path'/ }, "'=path' without a name");
  t.throws(() => resolveModelSpec(7 as unknown as string), { name: 'TypeError', code: 'E_INPUT' }, 'not a string');
  t.throws(() => resolveModelSpec('missing/my.json'), { code: 'E_INPUT', message: /^Expected an existing descriptor file for the model but received 'missing\/my\.json' \(no such file: .*my\.json\)$/ }, 'descriptor file that does not exist');
  const noConverter = { ...resolveModelSpec('mobilefacenet').descriptor, weights: { ...resolveModelSpec('mobilefacenet').descriptor.weights, converter: null } };
  await t.rejects(convertModel(noConverter, new Uint8Array(1)),
    { code: 'E_INPUT', message: "Converting 'mobilefacenet' (pytorch weights from Xiaoccer/MobileFaceNet_Pytorch) is not yet supported: its descriptor names no converter" }, 'a descriptor without a converter');
  const ssd = resolveModelSpec('faceapi-ssd').descriptor;
  await t.rejects(convertModel(ssd, new Uint8Array(4)), { code: 'E_INPUT', message: /^Expected the path of a face-api weight manifest or of its folder for the weights but received Uint8Array of length 4: tfjs weights are a manifest plus shard files$/ }, 'face-api converters take a path');
  await t.rejects(convertModel(ssd, path.join(faceApiModelDir(), 'face_recognition_model-weights_manifest.json')), { code: 'E_MODEL', message: /^Expected face-api's manifest 'ssd_mobilenetv1_model-weights_manifest\.json' \(or its folder\) for the weights but received '.*face_recognition_model-weights_manifest\.json'$/ }, "another model's manifest");
  const fromFolder = await convertModel(resolveModelSpec('faceapi-landmarks68').descriptor, faceApiModelDir());
  const fromManifest = await convertModel(resolveModelSpec('faceapi-landmarks68').descriptor, path.join(faceApiModelDir(), 'face_landmark_68_model-weights_manifest.json'));
  t.ok(fromFolder.length > 1e6 && Buffer.from(fromFolder).equals(Buffer.from(fromManifest)), 'a face-api converter takes the folder or the manifest');
});

t.test('your own descriptor: by file, and in FACESIGHT_MODELS', async (t) => {
  const dir = tempDir(t);
  const mine = { ...raw('facenet-mobilenetv1'), name: 'my-facenet', weights: { source: { publisher: 'me', file: 'my-facenet.onnx' }, format: 'onnx', converter: null, shipped: false } };
  const file = path.join(dir, 'my-facenet.json');
  fs.writeFileSync(file, JSON.stringify(mine));
  fs.writeFileSync(path.join(dir, 'my-facenet.onnx'), 'not really');

  const spec = resolveModelSpec(`${file}=${path.join(dir, 'my-facenet.onnx')}`);
  t.equal(spec.descriptor.name, 'my-facenet', 'a descriptor file as the name');
  t.equal(spec.descriptorPath, file);
  t.same(locateWeights(spec.descriptor, spec.weightsPath), { present: true, path: path.join(dir, 'my-facenet.onnx'), origin: 'user' }, 'its weights are present');
  t.same(locateWeights(spec.descriptor, path.join(dir, 'nope.onnx')), { present: false, path: path.join(dir, 'nope.onnx'), origin: 'user' }, 'a user path that does not exist');
  t.same(locateWeights(spec.descriptor), { present: false, origin: 'none' }, 'no path and no dataPath: nowhere to look');
  await t.rejects(convertModel(spec.descriptor, new Uint8Array(1)), { code: 'E_INPUT', message: "Model 'my-facenet' takes ONNX weights as they are: there is nothing to convert" }, 'ONNX weights: nothing to convert');

  const env = { ...process.env, FACESIGHT_MODELS: dir };
  t.same(knownModels(env).map((d) => d.name), [...SHIPPED, 'my-facenet'].sort(), 'FACESIGHT_MODELS adds its descriptors');
  t.equal(resolveModelSpec('my-facenet', env).descriptorPath, file, 'and they resolve by name');

  fs.writeFileSync(path.join(dir, 'other-name.json'), JSON.stringify(mine));
  expectModelError(t, () => knownModels(env), `${path.join(dir, 'other-name.json')} describes 'my-facenet': a descriptor's file name must be its name plus .json`, 'file name not the model name');
  fs.rmSync(path.join(dir, 'other-name.json'));
  fs.writeFileSync(path.join(dir, 'mobilefacenet.json'), JSON.stringify(raw('mobilefacenet')));
  expectModelError(t, () => knownModels(env), /^Model 'mobilefacenet' is described twice: .*models\/mobilefacenet\.json and .*mobilefacenet\.json$/, 'a name described twice');
  fs.rmSync(path.join(dir, 'mobilefacenet.json'));
  fs.writeFileSync(path.join(dir, 'broken.json'), '{');
  expectModelError(t, () => resolveModelSpec('retinaface-mnet025', { ...env }), /broken\.json is not valid JSON/, 'a broken descriptor in FACESIGHT_MODELS is reported');
  fs.rmSync(path.join(dir, 'broken.json'));

  const data = tempDir(t);
  const dataEnv = { ...process.env, FACESIGHT_DATA: data };
  t.equal(dataDir(dataEnv), data, 'FACESIGHT_DATA sets the data folder');
  const retina = resolveModelSpec('retinaface-mnet025').descriptor;
  t.same(locateWeights(retina, undefined, dataEnv), { present: false, path: path.join(data, 'weights', 'retinaface_mnet025.pth'), origin: 'data' }, 'dataPath under FACESIGHT_DATA, absent');
});

t.test('the worked example in docs/models.md is a valid descriptor', async (t) => {
  const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'models.md'), 'utf8');
  const blocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]);
  t.ok(blocks.length >= 1, 'docs/models.md has a JSON example');
  for (const [i, block] of blocks.entries()) {
    const d = parseDescriptor(block, `docs/models.md example ${i + 1}`);
    t.ok(d.name, `example ${i + 1} (${d.name}) validates`);
  }
});

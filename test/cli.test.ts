// The `facesight` command, run as users run it: `node dist/cli/main.js ...` in a child process (so
// build first: `npx tsc -p tsconfig.json`). Exit codes 0 / 1 (runtime or model error) / 2 (usage),
// one-line errors, `models` and `convert` on a synthetic FaceNet checkpoint.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../lib/engine';
import { convertFaceNetMobileNetV1 } from '../lib/convert/facenet';
import { faceNetKeys } from '../lib/graphs/facenet';
import { SeededRandom } from '../lib/onnx/random';
import { repoRoot } from './helpers/data';
import { torchSave, type SavedTensor } from './helpers/torch-writer';

const CLI = path.join(repoRoot, 'dist', 'cli', 'main.js');
const NAMES = ['faceapi-landmarks68', 'faceapi-recognition', 'faceapi-ssd', 'facenet-mobilenetv1', 'mobilefacenet', 'retinaface-mnet025'];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function facesight(args: string[], env: NodeJS.ProcessEnv = {}, cwd = repoRoot): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, FACESIGHT_DEBUG: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A zip-format checkpoint with FaceNet's state-dict keys (+ BatchNorm counters), seeded random values. */
function faceNetCheckpoint(): Uint8Array {
  const rng = new SeededRandom(7);
  const entries: [string, SavedTensor][] = [];
  for (const { key, dims } of faceNetKeys()) {
    const count = dims.reduce((a, b) => a * b, 1);
    const data = key.endsWith('running_var') || key.endsWith('bn.weight') ? rng.uniformArray(count, 0.5, 1.5) : rng.normalArray(count, 0, 0.1);
    entries.push([key, { dtype: 'float32', dims, data }]);
    if (key.endsWith('.running_var')) entries.push([key.replace(/running_var$/, 'num_batches_tracked'), { dtype: 'int64', dims: [], data: [5n] }]);
  }
  return torchSave(entries);
}

/** stderr is exactly one line 'facesight: <message>' and the message matches. */
function oneLine(t: Tap.Test, r: Result, message: RegExp, what: string): void {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  t.equal(lines.length, 1, `${what}: one line on stderr`);
  t.match(lines[0] ?? '', /^facesight: /, `${what}: starts with 'facesight: '`);
  t.match((lines[0] ?? '').slice('facesight: '.length), message, `${what}: message`);
}

if (!fs.existsSync(CLI)) {
  t.fail(`${path.relative(repoRoot, CLI)} does not exist: build the TypeScript first (npx tsc -p tsconfig.json)`);
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facesight-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const checkpoint = faceNetCheckpoint();
  const weights = path.join(dir, 'facenet_mobilenet.pth');
  fs.writeFileSync(weights, checkpoint);
  const truncated = path.join(dir, 'truncated.pth');
  fs.writeFileSync(truncated, checkpoint.subarray(0, checkpoint.length >> 1));

  t.test('invalid input', async (t) => {
    const out = path.join(dir, 'never.onnx');
    let r = await facesight(['convert', 'facenet', weights, '-o', out]);
    t.equal(r.code, 2, 'unknown model: exit 2');
    oneLine(t, r, /^Expected a known model \(faceapi-landmarks68, faceapi-recognition, faceapi-ssd, facenet-mobilenetv1, mobilefacenet, retinaface-mnet025\) or a descriptor file \(\.json\) for the model but received "facenet"$/, 'unknown model');

    r = await facesight(['convert', 'facenet-mobilenetv1', weights]);
    t.equal(r.code, 2, 'missing -o: exit 2');
    oneLine(t, r, /^missing -o\/--output <out\.onnx> \(see 'facesight convert --help'\)$/, 'missing -o');

    r = await facesight(['convert', 'facenet-mobilenetv1', truncated, '-o', out]);
    t.equal(r.code, 1, 'truncated weights: exit 1');
    oneLine(t, r, /^Malformed PyTorch checkpoint \('.*truncated\.pth'\): no zip end-of-central-directory record/, 'truncated weights (E_MODEL)');
    t.notOk(fs.existsSync(out), 'no output written');

    r = await facesight(['convert', 'facenet-mobilenetv1', path.join(dir, 'absent.pth'), '-o', out]);
    t.equal(r.code, 1, 'weights file that does not exist: exit 1');
    oneLine(t, r, /^Cannot read checkpoint file '.*absent\.pth': ENOENT/, 'weights file that does not exist');

    r = await facesight(['convert', 'mobilefacenet', weights, '-o', out]);
    t.equal(r.code, 1, "another model's weights: exit 1");
    oneLine(t, r, /^Expected the \d+ weights of MobileFaceNet \(Xiaoccer\/MobileFaceNet_Pytorch\) in '.*', but it is missing/, "another model's weights (E_MODEL)");

    r = await facesight(['convert', `facenet-mobilenetv1=${weights}`, weights, '-o', out]);
    t.equal(r.code, 2, 'weights given twice: exit 2');
    oneLine(t, r, /^the weights are given twice/, 'weights given twice');

    r = await facesight(['convert', 'facenet-mobilenetv1', weights, '-o', out, '--fast']);
    t.equal(r.code, 2, 'unknown option: exit 2');
    oneLine(t, r, /^Unknown option '--fast' \(see 'facesight convert --help'\)$/, 'unknown option');

    r = await facesight(['convert', 'facenet-mobilenetv1', weights, '-o']);
    t.equal(r.code, 2, '-o without a value: exit 2');
    oneLine(t, r, /^Option '-o, --output <value>' argument missing/, '-o without a value');

    r = await facesight(['detekt', 'x.jpg']);
    t.equal(r.code, 2, 'unknown command: exit 2');
    oneLine(t, r, /^unknown command 'detekt' \(commands: detect, encode, recognize, verify, models, convert, eval; see 'facesight --help'\)$/, 'unknown command');

    r = await facesight([]);
    t.equal(r.code, 2, 'no command: exit 2');
    t.match(r.stderr, /^Usage: facesight <command> \[options\]/, 'no command: the usage on stderr');

    r = await facesight(['models', 'nope=x.pth']);
    t.equal(r.code, 2, 'models with an unknown name: exit 2');

    r = await facesight(['convert', 'facenet-mobilenetv1', truncated, '-o', out], { FACESIGHT_DEBUG: '1' });
    t.equal(r.code, 1, 'FACESIGHT_DEBUG=1: same exit code');
    t.match(r.stderr, /^facesight: Malformed PyTorch checkpoint[^\n]*\ncode: E_MODEL\nFaceError: Malformed[^\n]*\n\s+at /, 'FACESIGHT_DEBUG=1: the code and the stack follow the line');
  });

  t.test('help and version', async (t) => {
    let r = await facesight(['--help']);
    t.equal(r.code, 0, '--help: exit 0');
    t.match(r.stdout, /Commands:\n(?:\s+\w+ .*\n)*?\s+models\s+list the known models.*\n\s+convert\s+convert published weights/, '--help lists the commands');
    r = await facesight(['convert', '--help']);
    t.equal(r.code, 0, 'convert --help: exit 0');
    t.match(r.stdout, /^Usage:\n  facesight convert <model> <weights> -o <out\.onnx>\n/, 'convert --help: usage');
    t.match(r.stdout, /-o, --output <out\.onnx>/, 'convert --help: options');
    r = await facesight(['help', 'models']);
    t.equal(r.code, 0, 'help models: exit 0');
    t.match(r.stdout, /facesight models \[<model>\[=<weights>\] \.\.\.\] \[--json\]/, 'help models: usage');
    r = await facesight(['--version']);
    const version = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
    t.equal(r.stdout.trim(), version, '--version');
  });

  t.test('models', async (t) => {
    const empty = fs.mkdtempSync(path.join(dir, 'data-'));
    let r = await facesight(['models'], { FACESIGHT_DATA: empty });
    t.equal(r.code, 0, 'exit 0');
    t.equal(r.stderr, '', 'nothing on stderr');
    const lines = r.stdout.trim().split('\n');
    t.match(lines[0], /^NAME\s+ROLE\s+SOURCE\s+WEIGHTS HERE$/, 'header');
    t.same(lines.slice(1, 1 + NAMES.length).map((l) => l.split(/\s+/)[0]), NAMES, 'the six models, by name');
    t.match(lines.find((l) => l.startsWith('faceapi-ssd')), /detector\s+justadudewhohacks\/face-api\.js, packaged by @vladmandic\/face-api: ssd_mobilenetv1_model-weights_manifest\.json\s+yes: .*ssd_mobilenetv1_model-weights_manifest\.json \(shipped in @vladmandic\/face-api\)$/, 'faceapi-ssd row: shipped, present');
    t.match(lines.find((l) => l.startsWith('retinaface-mnet025')), /detector\s+biubug6\/Pytorch_Retinaface: mobilenet0\.25_Final\.pth\s+no \(not in the data folder\)$/, 'retinaface row: role, source, absent');
    t.match(lines.find((l) => l.startsWith('facenet-mobilenetv1')), /embedder\s+bubbliiiing\/facenet-pytorch: facenet_mobilenet\.pth\s+no \(bring your own: name=path\)$/, 'facenet row');
    t.match(lines.at(-1), new RegExp(`^\\(data folder: ${empty.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)$`), 'says where it looked');

    // Weights present under the data folder, and at a user path.
    fs.mkdirSync(path.join(empty, 'weights'));
    fs.writeFileSync(path.join(empty, 'weights', 'retinaface_mnet025.pth'), 'x');
    r = await facesight(['models', 'retinaface-mnet025', `facenet-mobilenetv1=${weights}`, `mobilefacenet=${path.join(dir, 'absent.ckpt')}`], { FACESIGHT_DATA: empty });
    t.equal(r.code, 0, 'named models: exit 0');
    const rows = r.stdout.trim().split('\n').slice(1, 4);
    t.match(rows[0], /^retinaface-mnet025 .* yes: .*weights\/retinaface_mnet025\.pth \(test data\)$/, 'present in the data folder');
    t.match(rows[1], new RegExp(`^facenet-mobilenetv1 .* yes: ${weights.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`), 'present at the user path');
    t.match(rows[2], /^mobilefacenet .* no: .*absent\.ckpt does not exist$/, 'absent at the user path');

    r = await facesight(['models', '--json'], { FACESIGHT_DATA: empty });
    const json = JSON.parse(r.stdout) as { name: string; role: string; converter: string | null; weights: { present: boolean; origin: string } }[];
    t.same(json.map((m) => m.name), NAMES, '--json: names');
    t.same(json.map((m) => [m.role, m.converter, m.weights.present, m.weights.origin]), [
      ['landmarks', 'faceapi-landmarks68', true, 'package'],
      ['embedder', 'faceapi-recognition', true, 'package'],
      ['detector', 'faceapi-ssd', true, 'package'],
      ['embedder', 'facenet-mobilenetv1', false, 'none'],
      ['embedder', 'mobilefacenet', false, 'data'],
      ['detector', 'retinaface-mnet025', true, 'data'],
    ], '--json: role, converter, weights');
  });

  t.test('convert a FaceNet checkpoint', async (t) => {
    const out = path.join(dir, 'facenet.onnx');
    let r = await facesight(['convert', 'facenet-mobilenetv1', weights, '-o', out]);
    t.equal(r.code, 0, 'exit 0');
    t.equal(r.stderr, '', 'nothing on stderr');
    t.match(r.stdout, /^wrote .*facenet\.onnx: facenet-mobilenetv1, \d+ bytes, sha256 [0-9a-f]{64}\n$/, 'says what it wrote');
    const bytes = fs.readFileSync(out);
    t.ok(bytes.equals(await convertFaceNetMobileNetV1(checkpoint)), 'the same bytes as the API');
    t.same(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');

    const model = await loadModel(out, { threads: 1 });
    t.same(model.inputs, [{ name: 'input', dims: ['N', 3, 160, 160] }], 'loads in facesight: input');
    t.same(model.outputs, [{ name: 'embedding', dims: ['N', 128] }], 'loads in facesight: output');
    const data = new SeededRandom(3).uniformArray(3 * 160 * 160, 0, 1);
    const ours = (await model.run({ input: { data, dims: [1, 3, 160, 160] } })).embedding!;
    model.dispose();
    const session = await ort.InferenceSession.create(out);
    const theirs = (await session.run({ input: new ort.Tensor('float32', data, [1, 3, 160, 160]) })).embedding!.data as Float32Array;
    let worst = 0;
    for (let i = 0; i < 128; i++) worst = Math.max(worst, Math.abs(ours.data[i] - theirs[i]));
    t.ok(worst < 1e-5, `loads in onnxruntime; outputs agree (max |diff| ${worst.toExponential(2)} < 1e-5)`);

    const again = path.join(dir, 'facenet-2.onnx');
    r = await facesight(['convert', `facenet-mobilenetv1=${path.relative(dir, weights)}`, '--output', 'facenet-2.onnx'], {}, dir);
    t.equal(r.code, 0, "'name=path' with relative paths: exit 0");
    t.ok(fs.readFileSync(again).equals(bytes), "'name=path': the same model");
  });
}

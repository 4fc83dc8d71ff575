// The face commands (detect, encode, recognize, verify), run through main() with an injected CliIO:
// exit codes (0 / 1 an input failed / 2 usage / 3 verify: different people), --json naming each file,
// a bad image among good ones, --annotate, and enrolment then recognition on the gallery_match photos.
// The photos: a small copy of @vladmandic/face-api's demo/sample1.jpg (always installed) and the data
// folder's photos/gallery_match (skipped when absent).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import type { CliIO } from '../lib/cli/command';
import { processImages } from '../lib/cli/inputs';
import { main } from '../lib/cli/main';
import { FaceError } from '../lib/errors';
import type { FaceEngine } from '../lib/pipeline/face-engine';
import type { Frame } from '../lib/pipeline/image';
import { faceApiModelDir } from '../lib/convert/faceapi';
import { dataPath } from './helpers/data';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function facesight(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = {
    out: (text) => void (stdout += `${text}\n`),
    err: (text) => void (stderr += `${text}\n`),
    env: { FACESIGHT_PROGRESS: 'lines' },
  };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

/** stderr lines without the progress lines. */
function errors(r: Run): string[] {
  return r.stderr.split('\n').filter((l) => l !== '' && !/^\w+ \d+\/\d+ \(\d+ %\)/.test(l));
}

function oneLine(t: Tap.Test, r: Run, code: number, message: RegExp, what: string): void {
  t.equal(r.code, code, `${what}: exit ${code}`);
  const lines = errors(r);
  t.equal(lines.length, 1, `${what}: one line on stderr`);
  t.match(lines[0] ?? '', /^facesight: /, `${what}: starts with 'facesight: '`);
  t.match((lines[0] ?? '').slice('facesight: '.length), message, `${what}: message`);
}

interface FaceJson {
  box: { x: number; y: number; width: number; height: number };
  score: number;
  landmarks: { x: number; y: number }[];
  landmarks68?: { x: number; y: number }[];
  name?: string;
  distance?: number | null;
}
interface EntryJson {
  file: string;
  width?: number;
  height?: number;
  faces?: FaceJson[];
  error?: { code: string; message: string };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facesight-cli-faces-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

// A small copy of face-api's sample1.jpg (three people): 640 × 427.
const SAMPLE = path.join(dir, 'people.jpg');
const SAMPLE_SIZE = { width: 640, height: 427 };

t.before(async () => {
  await sharp(path.join(faceApiModelDir(), '..', 'demo', 'sample1.jpg')).rotate().resize(SAMPLE_SIZE.width).jpeg({ quality: 90 }).toFile(SAMPLE);
  const meta = await sharp(SAMPLE).metadata();
  if (meta.width !== SAMPLE_SIZE.width || meta.height !== SAMPLE_SIZE.height) throw new Error(`sample copy is ${meta.width}×${meta.height}`);
});

t.test('invalid input', async (t) => {
  let r = await facesight(['detect']);
  oneLine(t, r, 2, /^missing the images \(files or folders\) \(see 'facesight detect --help'\)$/, 'detect without images');

  r = await facesight(['detect', SAMPLE, '--fast']);
  oneLine(t, r, 2, /^Unknown option '--fast' \(see 'facesight detect --help'\)$/, 'unknown option');

  r = await facesight(['detect', SAMPLE, '--embedder', 'faceapi-recognition']);
  oneLine(t, r, 2, /^Unknown option '--embedder'/, 'detect takes no --embedder');

  r = await facesight(['detect', SAMPLE, '--threshold', '2']);
  oneLine(t, r, 2, /^Expected a number from 0 to 1 for options\.detection\.threshold but received number 2$/, 'detection threshold out of range');

  r = await facesight(['detect', SAMPLE, '--input-size', 'big']);
  oneLine(t, r, 2, /^--input-size expects a number, not 'big'$/, '--input-size not a number');

  r = await facesight(['detect', SAMPLE, '--detector', 'nope']);
  oneLine(t, r, 2, /^Expected a known model \(.*\) or a descriptor file \(\.json\) for options\.detector but received "nope"$/, 'unknown detector');

  r = await facesight(['detect', SAMPLE, '--annotate', path.join(dir, 'out.gif')]);
  oneLine(t, r, 2, /^--annotate .*out\.gif: expected a file name ending in \.png, \.jpg, \.jpeg or \.webp \(or an existing folder\)$/, '--annotate with an unsupported extension');

  r = await facesight(['detect', SAMPLE, SAMPLE, '--annotate', path.join(dir, 'one.png')]);
  oneLine(t, r, 2, /^--annotate .*one\.png: with 2 images, expected a folder to write one image per input into, not a file name$/, '--annotate a file for two images');

  r = await facesight(['detect', SAMPLE, '--annotate', SAMPLE]);
  oneLine(t, r, 2, /^--annotate .*people\.jpg would overwrite the input .*people\.jpg$/, '--annotate onto the input');

  r = await facesight(['recognize', SAMPLE]);
  oneLine(t, r, 2, /^missing --db <faces\.npy> \(see 'facesight recognize --help'\)$/, 'recognize without --db');

  r = await facesight(['recognize', SAMPLE, '--db', path.join(dir, 'x.npy'), '--match-threshold=-1']);
  oneLine(t, r, 2, /^--match-threshold expects a positive number \(a Euclidean distance\), not '-1'$/, 'negative --match-threshold');

  r = await facesight(['encode', dir]);
  oneLine(t, r, 2, /^missing --db <faces\.npy> \(see 'facesight encode --help'\)$/, 'encode without --db');

  r = await facesight(['encode', dir, '--db', path.join(dir, 'faces.txt')]);
  oneLine(t, r, 2, /^--db .*faces\.txt: expected a path ending in \.npy$/, 'encode --db not .npy');

  r = await facesight(['encode', '--db', path.join(dir, 'faces.npy')]);
  oneLine(t, r, 2, /^missing <folder> \(see 'facesight encode --help'\)$/, 'encode without a folder');

  r = await facesight(['verify', SAMPLE]);
  oneLine(t, r, 2, /^missing <image-b> \(see 'facesight verify --help'\)$/, 'verify with one image');

  r = await facesight(['verify', SAMPLE, SAMPLE, SAMPLE]);
  oneLine(t, r, 2, /^too many arguments: '.*people\.jpg' \(see 'facesight verify --help'\)$/, 'verify with three images');

  // Runtime errors: exit 1.
  r = await facesight(['detect', path.join(dir, 'absent.jpg')]);
  oneLine(t, r, 1, /^Cannot read image file '.*absent\.jpg' \(image\): ENOENT/, 'an image that does not exist');

  r = await facesight(['recognize', SAMPLE, '--db', path.join(dir, 'absent.npy')]);
  oneLine(t, r, 1, /^Cannot read the face database .*absent\.npy: ENOENT/, 'a database that does not exist');

  const empty = fs.mkdtempSync(path.join(dir, 'empty-'));
  r = await facesight(['detect', empty]);
  oneLine(t, r, 1, /^No images \(.*\) in the folder .*empty-\w+$/, 'a folder without images');

  r = await facesight(['encode', empty, '--db', path.join(dir, 'empty.npy')]);
  oneLine(t, r, 1, /^No images in .*empty-\w+ .*nothing written$/, 'encode of a folder without images');
  t.notOk(fs.existsSync(path.join(dir, 'empty.npy')), 'nothing written');

  const noface = path.join(dir, 'grey.png');
  await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 128, g: 128, b: 128 } } }).png().toFile(noface);
  r = await facesight(['verify', SAMPLE, noface]);
  oneLine(t, r, 1, /^verify: no face found in '.*grey\.png'$/, 'verify with an image without a face (E_NO_FACE)');
  r = await facesight(['verify', noface, SAMPLE, '--json']);
  t.equal(r.code, 1, 'verify --json without a face: exit 1');
  const json = JSON.parse(r.stdout) as { a: { file: string; error?: { code: string } }; b: { file: string }; error: { code: string; message: string } };
  t.same([json.a.file, json.a.error?.code, json.b.file, json.error.code], [noface, 'E_NO_FACE', SAMPLE, 'E_NO_FACE'], 'verify --json: the error, on the image without a face');
});

t.test('batches: one bad frame does not spoil its batch', async (t) => {
  // Images 1×1 … 10×1 px; the stub engine rejects any batch holding the 7-px one (E_INPUT, as the
  // engine does for an image of its own), and answers each frame with its width.
  const folder = path.join(dir, 'tiny');
  fs.mkdirSync(folder);
  const files: string[] = [];
  for (let w = 1; w <= 10; w++) {
    const file = path.join(folder, `${String(w).padStart(2, '0')}.png`);
    await sharp({ create: { width: w, height: 1, channels: 3, background: '#808080' } }).png().toFile(file);
    files.push(file);
  }
  const calls: number[][] = [];
  const entries: unknown[] = [];
  const failures: FaceError[] = [];
  const io = { out: () => undefined, err: () => undefined } as never;
  const engine = { limitInputPixels: 1e8 } as FaceEngine;
  await processImages<number>(files, {
    failures,
    entries,
    progress: { io, label: 'test', images: { folder: false, files } },
    engine,
    run: async (frames: Frame[]) => {
      calls.push(frames.map((f) => f.width));
      if (frames.some((f) => f.width === 7)) throw new FaceError('E_INPUT', 'the 7-px image is bad');
      return frames.map((f) => f.width);
    },
    each: (o) => void entries.push({ file: o.file, result: o.result }),
  });
  t.same(calls, [[1, 2, 3, 4, 5, 6, 7, 8], [1], [2], [3], [4], [5], [6], [7], [8], [9, 10]], 'batches of 8; the rejected one again frame by frame');
  const shown = entries as { file: string; result?: number; error?: { code: string; message: string } }[];
  t.same(shown.map((o) => o.error?.message ?? o.result), [1, 2, 3, 4, 5, 6, 'the 7-px image is bad', 8, 9, 10], 'every other image has its result, the failed one its error entry, in order');
  t.same(shown.map((o) => path.basename(o.file)), files.map((f) => path.basename(f)), 'each entry names its file');
  t.same(failures.map((e) => e.message), ['the 7-px image is bad'], 'the failure is collected for the report');

  const failing = processImages<number>(files.slice(0, 2), {
    engine,
    run: async () => {
      throw new FaceError('E_STATE', 'The face engine has been disposed');
    },
    failures: [],
    entries: [],
    progress: { io, label: 'test', images: { folder: false, files } },
    each: () => undefined,
  });
  await t.rejects(failing, { code: 'E_STATE' }, "the engine's own error stops everything");
});

t.test('help', async (t) => {
  let r = await facesight(['--help']);
  t.equal(r.code, 0, '--help: exit 0');
  t.match(r.stdout, /Commands:\n\s+detect\s+.*\n\s+encode\s+.*\n\s+recognize\s+.*\n\s+verify\s+/, 'the face commands listed');
  t.match(r.stdout, /Exit codes: 0 success; 1 an error \(including any input image that could not be read.*\n.*2 a usage error; 3 verify: the two faces are not the same person\./, 'exit codes documented');
  r = await facesight(['verify', '--help']);
  t.match(r.stdout, /Exit codes: 0 the same person, 3 different people, 1 an image that cannot be read or shows no face/, 'verify --help: the exit codes');
  t.match(r.stdout, /--match-threshold <distance>/, 'verify --help: --match-threshold');
  t.match(r.stdout, /--threshold <0-1>\s+detection score threshold/, 'verify --help: --threshold is the detection threshold');
});

t.test('detect a photo: table, --json, --annotate', async (t) => {
  let r = await facesight(['detect', SAMPLE]);
  t.equal(r.code, 0, 'exit 0');
  t.equal(r.stderr, '', 'nothing on stderr');
  const lines = r.stdout.trim().split('\n');
  t.match(lines[0], /^FILE\s+FACE\s+BOX\s+SCORE$/, 'table header');
  t.equal(lines.length, 5, 'three faces and a summary');
  t.match(lines[1], /people\.jpg\s+1\s+\d+,\d+ \d+x\d+\s+0\.\d{3}$/, 'a face row');
  t.equal(lines[4], '3 faces in 1 image', 'summary');

  const annotated = path.join(dir, 'people-annotated.png');
  r = await facesight(['detect', SAMPLE, '--json', '--annotate', annotated]);
  t.equal(r.code, 0, '--json --annotate: exit 0');
  const json = JSON.parse(r.stdout) as EntryJson[];
  t.equal(json.length, 1, 'one entry for one input');
  t.equal(json[0].file, SAMPLE, 'the entry names its file');
  t.same([json[0].width, json[0].height], [SAMPLE_SIZE.width, SAMPLE_SIZE.height], 'the image size');
  const faces = json[0].faces!;
  t.equal(faces.length, 3, 'three faces');
  for (const f of faces) {
    t.ok(f.box.width > 30 && f.box.height > 30 && f.box.x >= -5 && f.box.x + f.box.width <= SAMPLE_SIZE.width + 5, 'a box inside the image');
    t.ok(f.score >= 0.5 && f.score <= 1, 'a score above the default threshold');
    t.equal(f.landmarks.length, 5, 'five landmarks');
    t.equal(f.landmarks68?.length, 68, '68 landmarks');
    const [le, re] = f.landmarks;
    t.ok(le.x > f.box.x && re.x < f.box.x + f.box.width && le.y > f.box.y && le.y < f.box.y + f.box.height, 'eyes inside the box');
  }
  t.ok(faces.every((f, k) => k === 0 || faces[k - 1].score >= f.score), 'by descending score');
  const meta = await sharp(annotated).metadata();
  t.same([meta.format, meta.width, meta.height], ['png', SAMPLE_SIZE.width, SAMPLE_SIZE.height], "--annotate: a PNG of the input's size");
  const before = await sharp(SAMPLE).raw().toBuffer();
  const after = await sharp(annotated).removeAlpha().raw().toBuffer();
  const b = faces[0].box;
  const at = (buf: Buffer, x: number, y: number) => buf[(Math.round(y) * SAMPLE_SIZE.width + Math.round(x)) * 3 + 1];
  let differs = 0;
  for (let y = b.y + 5; y < b.y + b.height - 5; y += 4) for (const x of [b.x - 1, b.x, b.x + 1]) if (Math.abs(at(before, x, y) - at(after, x, y)) > 30) differs++;
  t.ok(differs > 5, '--annotate: the box drawn where --json says');
});

t.test('a folder with a corrupt image among good ones', async (t) => {
  const folder = path.join(dir, 'mixed');
  fs.mkdirSync(folder);
  fs.copyFileSync(SAMPLE, path.join(folder, 'a.jpg'));
  fs.writeFileSync(path.join(folder, 'b.jpg'), 'this is not a JPEG');
  fs.writeFileSync(path.join(folder, 'c.png'), '');
  await sharp(SAMPLE).resize(320).png().toFile(path.join(folder, 'd.png'));
  fs.writeFileSync(path.join(folder, 'notes.txt'), 'not an image: skipped');
  const out = path.join(dir, 'mixed-annotated');

  const r = await facesight(['detect', folder, '--json', '--annotate', out]);
  t.equal(r.code, 1, 'exit 1: an input failed');
  const json = JSON.parse(r.stdout) as EntryJson[];
  t.same(json.map((e) => path.basename(e.file)), ['a.jpg', 'b.jpg', 'c.png', 'd.png'], 'one entry per image, sorted, the text file skipped');
  t.equal(json[0].faces?.length, 3, 'a.jpg: its faces');
  t.equal(json[3].faces?.length, 3, 'd.png (after the bad ones): its faces');
  t.same(json[1].error?.code, 'E_INPUT', 'b.jpg: an error entry with its code');
  t.match(json[1].error?.message, /^Cannot decode image '.*b\.jpg'/, 'b.jpg: the message');
  t.match(json[2].error?.message, /^Cannot decode image '.*c\.png': the file is empty \(0 bytes\)$/, 'c.png: the message');
  const lines = errors(r);
  t.equal(lines.length, 2, 'two lines on stderr');
  t.match(lines[0], /^facesight: Cannot decode image '.*b\.jpg'/, 'b.jpg reported');
  t.match(lines[1], /^facesight: Cannot decode image '.*c\.png'/, 'c.png reported');
  t.match(r.stderr, /^detect 4\/4 \(100 %\)/m, 'the progress on stderr (a folder)');
  t.same(fs.readdirSync(out).sort(), ['a.jpg', 'd.png'], '--annotate: a folder with one image per readable input');
  const meta = await sharp(path.join(out, 'd.png')).metadata();
  t.same([meta.width, meta.height], [320, 214], "--annotate: each of its input's size");

  const text = await facesight(['detect', folder]);
  t.equal(text.code, 1, 'text: exit 1');
  t.match(text.stdout, /6 faces in 2 images; 2 could not be read\n$/, 'text: the summary');
});

t.test('encode, recognize and verify on gallery_match', async (t) => {
  const source = dataPath(t, 'photos/gallery_match');
  if (!source) return;
  const gallery = path.join(dir, 'gallery');
  fs.mkdirSync(path.join(gallery, 'zhangxueyou'), { recursive: true });
  fs.copyFileSync(path.join(source, 'gallery_obama_1.jpg'), path.join(gallery, 'obama_1.jpg')); // flat layout: Name_1.jpg
  fs.copyFileSync(path.join(source, 'gallery_zhangxueyou_1.jpg'), path.join(gallery, 'zhangxueyou', 'portrait.jpg')); // a folder per person
  fs.writeFileSync(path.join(gallery, 'broken_1.jpg'), 'not a JPEG');
  const db = path.join(dir, 'db', 'faces.npy');

  let r = await facesight(['encode', gallery, '--db', db]);
  t.equal(r.code, 1, 'encode with an unreadable image: exit 1 (the others enrolled)');
  t.match(errors(r).join('\n'), /^facesight: .*broken_1\.jpg/, 'the unreadable image reported');
  t.match(r.stdout, /^images\s+3\npeople\s+2\s+\(obama, zhangxueyou\)\nentries\s+2\nno face\s+0\nfailed\s+1\s+\(.*broken_1\.jpg\)\n/, 'the summary');
  fs.rmSync(path.join(gallery, 'broken_1.jpg'));
  r = await facesight(['encode', gallery, '--db', db, '--json']);
  t.equal(r.code, 0, 'encode: exit 0');
  const summary = JSON.parse(r.stdout) as { images: number; people: number; entries: number; names: string[]; embedder: string; threshold: number; noFace: string[]; failed: unknown[] };
  t.same([summary.images, summary.people, summary.entries, summary.names, summary.noFace, summary.failed], [2, 2, 2, ['obama', 'zhangxueyou'], [], []], 'encode --json: the summary');
  for (const f of ['faces.npy', 'faces.names.npy', 'faces.json']) t.ok(fs.existsSync(path.join(dir, 'db', f)), `wrote ${f}`);

  const queries = ['query_obama.jpg', 'query_zhangxueyou.jpg'].map((f) => path.join(source, f));
  r = await facesight(['recognize', ...queries, '--db', db, '--json']);
  t.equal(r.code, 0, 'recognize: exit 0');
  const json = JSON.parse(r.stdout) as EntryJson[];
  t.same(json.map((e) => e.file), queries, 'one entry per query, naming it');
  t.same(json.map((e) => e.faces?.map((f) => f.name)), [['obama'], ['zhangxueyou']], 'each query is its own person');
  t.ok(json.every((e) => e.faces!.every((f) => typeof f.distance === 'number' && f.distance < 0.4)), 'close distances');

  r = await facesight(['recognize', queries[0], '--db', db, '--match-threshold', '0.01', '--annotate', path.join(dir, 'unknown.jpg')]);
  t.equal(r.code, 0, 'recognize, threshold 0.01: exit 0');
  t.match(r.stdout, /query_obama\.jpg\s+1\s+\S+ \S+\s+0\.\d+\s+Unknown\s+0\.\d{4}\n/, "beyond the threshold: 'Unknown' in the table");
  t.same((await sharp(path.join(dir, 'unknown.jpg')).metadata()).format, 'jpeg', '--annotate .jpg: a JPEG');

  // face-api's published 0.6 is for its unnormalised descriptors; facesight's are L2-normalised
  // (issue #5 recalibrates), so the pair of different people is checked at an explicit threshold.
  const [obama, zhang] = [path.join(source, 'gallery_obama_1.jpg'), queries[1]];
  r = await facesight(['verify', obama, queries[0], '--match-threshold', '0.45']);
  t.equal(r.code, 0, 'verify, the same person: exit 0');
  t.match(r.stdout, /\nsame person: distance 0\.\d{4} <= threshold 0\.45\n$/, 'verify: the verdict');
  const out = path.join(dir, 'verify-annotated');
  r = await facesight(['verify', obama, zhang, '--match-threshold', '0.45', '--json', '--annotate', out]);
  t.equal(r.code, 3, 'verify, different people: exit 3');
  const v = JSON.parse(r.stdout) as { a: { file: string; face: FaceJson }; b: { file: string; face: FaceJson }; same: boolean; distance: number; threshold: number };
  t.same([v.a.file, v.b.file, v.same, v.threshold], [obama, zhang, false, 0.45], 'verify --json: files, verdict, threshold');
  t.ok(v.distance > 0.45 && v.a.face.landmarks.length === 5, 'verify --json: distance and faces');
  t.same(fs.readdirSync(out).sort(), ['gallery_obama_1.jpg', 'query_zhangxueyou.jpg'], 'verify --annotate: both images in the folder');
});

t.test('verify at the default threshold (calibrated on LFW)', async (t) => {
  const source = dataPath(t, 'photos/gallery_match');
  if (!source) return;
  const r = await facesight(['verify', path.join(source, 'gallery_obama_1.jpg'), path.join(source, 'query_zhangxueyou.jpg')]);
  t.equal(r.code, 3, 'Obama and Jacky Cheung: different people at the default threshold');
  const same = await facesight(['verify', path.join(source, 'gallery_obama_1.jpg'), path.join(source, 'query_obama.jpg')]);
  t.equal(same.code, 0, 'two photos of Obama: the same person at the default threshold');
});

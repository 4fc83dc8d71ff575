// The face database (lib/pipeline/database.ts): enrolment from a folder with a stub engine, the seed's
// compare_faces semantics, save/load of facesight's and the seed's files, and damaged or interrupted files.
// End-to-end enrolment with the real engine is tested with the engine.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { FaceError } from '../lib/errors';
import { FaceDatabase, nameFromFile, type EmbeddedFace, type FaceEmbedder, type EnrolmentProgress } from '../lib/pipeline/database';
import { decodeNpy, encodeNpy } from '../lib/pipeline/npy';
import { SeededRandom } from '../lib/onnx/random';
import { expectRejects } from './helpers/assertions';

const DIM = 4;

/** A deterministic unit vector for a key (what the stub engine returns for a face labelled `key`). */
function vectorFor(key: string, dim = DIM): Float32Array {
  const v = new Float32Array(dim);
  for (let k = 0; k < dim; k += 32) {
    const digest = createHash('sha256').update(`${key}#${k}`).digest();
    for (let i = 0; i < 32 && k + i < dim; i++) v[k + i] = digest[i] / 255 - 0.5;
  }
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

/**
 * Reads each "image" as text: 'CORRUPT' rejects like an undecodable image (E_INPUT), otherwise a JSON
 * list of faces [{ key, w, h }] (default: one face keyed by the file's base name), each embedded as
 * vectorFor(key). Records every call.
 */
class StubEngine implements FaceEmbedder {
  calls: string[][] = [];
  embedder: { name: string; size: number; threshold: number | null } | null = { name: 'stub-embedder', size: DIM, threshold: 0.6 };
  async embed(inputs: readonly (string | Uint8Array | object)[]): Promise<EmbeddedFace[][]> {
    const files = inputs as string[];
    this.calls.push([...files]);
    const out: EmbeddedFace[][] = [];
    for (const file of files) {
      const text = fs.readFileSync(file, 'utf8');
      if (text.startsWith('CORRUPT')) throw new FaceError('E_INPUT', `Cannot decode ${file}: Input buffer contains unsupported image format`);
      const faces: { key: string; w: number; h: number }[] = text.trim() === '' ? [{ key: path.basename(file), w: 10, h: 10 }] : JSON.parse(text);
      out.push(faces.map((f, k) => ({ box: { x: k, y: k, width: f.w, height: f.h }, score: 0.9 - k * 0.1, embedding: vectorFor(f.key) })));
    }
    return out;
  }
}

function tempDir(t: Tap.Test, prefix = 'facesight-db-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function write(dir: string, relative: string, content = ''): string {
  const file = path.join(dir, relative);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  return file;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A database of entries (name, vector) with the given options. */
function databaseOf(entries: [string, Float32Array][], options?: ConstructorParameters<typeof FaceDatabase>[0]): FaceDatabase {
  const db = new FaceDatabase(options);
  for (const [name, v] of entries) db.add(name, v);
  return db;
}

const rows = (db: FaceDatabase) => [...db.entries()].map((e) => [e.name, Array.from(e.embedding)]);

t.test('invalid input', async (t) => {
  const db = new FaceDatabase({ threshold: 1 });
  const call = (fn: () => unknown) => Promise.resolve().then(fn);
  // Constructor options.
  await expectRejects(t, call(() => new FaceDatabase({ threshold: -1 })), 'E_INPUT',
    /^Expected a distance threshold \(a finite number ≥ 0\) for options.threshold but received number -1$/, 'negative threshold', RangeError);
  await expectRejects(t, call(() => new FaceDatabase({ threshold: '1' as unknown as number })), 'E_INPUT', /for options.threshold but received "1"/, 'threshold string', TypeError);
  await expectRejects(t, call(() => new FaceDatabase({ dim: 0 })), 'E_INPUT', /^Expected an integer from 1 to 65536 for options.dim but received number 0$/, 'dim 0', RangeError);
  await expectRejects(t, call(() => new FaceDatabase({ size: 3 } as never)), 'E_INPUT', /^Expected one of threshold, embedder, dim for FaceDatabase options key but received "size"$/, 'unknown option', RangeError);
  // add().
  await expectRejects(t, call(() => db.add(42 as unknown as string, vectorFor('a'))), 'E_INPUT', /^Expected a name \(string\) for name but received number 42$/, 'numeric name', TypeError);
  await expectRejects(t, call(() => db.add('', vectorFor('a'))), 'E_INPUT', /^Expected a non-empty name for name but received ""$/, 'empty name', RangeError);
  await expectRejects(t, call(() => db.add('a\0b', vectorFor('a'))), 'E_INPUT', /without NUL characters/, 'name with NUL', RangeError);
  await expectRejects(t, call(() => db.add('a', [1, 2, 3, 4] as unknown as Float32Array)), 'E_INPUT', /^Expected a Float32Array for embedding but received an array of length 4$/, 'plain array', TypeError);
  await expectRejects(t, call(() => db.add('a', new Float64Array(4) as unknown as Float32Array)), 'E_INPUT', /received Float64Array of length 4/, 'Float64Array', TypeError);
  await expectRejects(t, call(() => db.add('a', new Float32Array([0.1, NaN, 0.2]))), 'E_INPUT', /^Expected finite values for embedding but received NaN at index 1$/, 'NaN', RangeError);
  await expectRejects(t, call(() => db.add('a', new Float32Array([Infinity]))), 'E_INPUT', /received Infinity at index 0/, 'Infinity', RangeError);
  await expectRejects(t, call(() => db.add('a', new Float32Array(0))), 'E_INPUT', /length ≥ 1/, 'empty embedding', RangeError);
  t.equal(db.size, 0, 'nothing was added by the rejected calls');
  t.equal(db.dim, null, 'nor was the dimension fixed');
  db.add('a', vectorFor('a'));
  await expectRejects(t, call(() => db.add('b', new Float32Array(5))), 'E_INPUT',
    /^Expected a Float32Array of length 4 \(the database's embedding length\) for embedding but received Float32Array of length 5$/, 'another length', RangeError);
  await expectRejects(t, call(() => db.remove(3 as unknown as string)), 'E_INPUT', /for name but received number 3/, 'remove(3)', TypeError);
  // match().
  await expectRejects(t, db.match(new Float32Array(3)), 'E_INPUT', /^Expected a Float32Array of length 4 .* for embedding but received Float32Array of length 3$/, 'query length', RangeError);
  await expectRejects(t, db.match('face' as unknown as Float32Array), 'E_INPUT', /for embedding but received "face"/, 'query string', TypeError);
  await expectRejects(t, db.match(new Float32Array([0, 0, NaN, 0])), 'E_INPUT', /NaN at index 2/, 'query NaN', RangeError);
  await expectRejects(t, db.match(vectorFor('a'), { threshold: -0.1 }), 'E_INPUT', /for options.threshold but received number -0.1/, 'negative threshold', RangeError);
  await expectRejects(t, db.match(vectorFor('a'), { threshold: NaN }), 'E_INPUT', /for options.threshold but received number NaN/, 'NaN threshold', RangeError);
  await expectRejects(t, db.match(vectorFor('a'), { tolerance: 1 } as never), 'E_INPUT', /^Expected one of threshold for match\(options\) key but received "tolerance"$/, 'unknown option', RangeError);
  const noThreshold = databaseOf([['a', vectorFor('a')]]);
  await expectRejects(t, noThreshold.match(vectorFor('a')), 'E_INPUT',
    /^Expected a distance threshold for options.threshold \(the database has no default threshold\) but received undefined$/, 'no threshold anywhere', RangeError);
  await expectRejects(t, db.matchMany(vectorFor('a') as unknown as Float32Array[]), 'E_INPUT', /^Expected an array of Float32Array embeddings for embeddings/, 'matchMany of one vector', TypeError);
  await expectRejects(t, db.matchMany([vectorFor('a'), new Float32Array(2)]), 'E_INPUT', /for embeddings\[1\] but received Float32Array of length 2/, 'matchMany with a bad query', RangeError);
  await expectRejects(t, new FaceDatabase().matchMany([new Float32Array(2), new Float32Array(3)], { threshold: 1 }), 'E_INPUT',
    /^Expected a Float32Array of length 2 .* for embeddings\[1\]/, 'matchMany queries of different lengths on an empty database', RangeError);
  // fromDirectory().
  const engine = new StubEngine();
  const dir = tempDir(t);
  await expectRejects(t, FaceDatabase.fromDirectory(7 as unknown as string, engine), 'E_INPUT', /^Expected a folder path for dir but received number 7$/, 'dir number', TypeError);
  await expectRejects(t, FaceDatabase.fromDirectory(dir, {} as FaceEmbedder), 'E_INPUT', /^Expected a face engine \(an object with embed\(\)\) for engine/, 'engine without embed', TypeError);
  await expectRejects(t, FaceDatabase.fromDirectory(dir, engine, { onProgress: 1 } as never), 'E_INPUT', /^Expected a function for options.onProgress but received number 1$/, 'onProgress', TypeError);
  await expectRejects(t, FaceDatabase.fromDirectory(dir, engine, { batchSize: 0 }), 'E_INPUT', /^Expected an integer from 1 to 256 for options.batchSize but received number 0$/, 'batchSize 0', RangeError);
  await expectRejects(t, FaceDatabase.fromDirectory(dir, engine, { extensions: ['a/b'] }), 'E_INPUT', /^Expected a file extension such as '.jpg' for options.extensions\[0\]/, 'bad extension', TypeError);
  await expectRejects(t, FaceDatabase.fromDirectory(dir, engine, { extensions: [] }), 'E_INPUT', /non-empty array of file extensions/, 'no extensions', TypeError);
  const detectorOnly = new StubEngine();
  detectorOnly.embedder = null;
  await expectRejects(t, FaceDatabase.fromDirectory(dir, detectorOnly), 'E_INPUT', /^Expected an engine with an embedding model \(engine.embedder\) for engine but received null$/, 'engine without embedder', TypeError);
  await expectRejects(t, FaceDatabase.fromDirectory(path.join(dir, 'nowhere'), engine), 'E_INPUT', /^Cannot read the face folder .*nowhere: ENOENT/, 'missing folder');
  t.equal(engine.calls.length, 0, 'the engine was never called for invalid arguments');
  // save() / load().
  await expectRejects(t, db.save(path.join(dir, 'faces.db')), 'E_INPUT', /^Expected a file path ending in '.npy' for path but received ".*faces.db"$/, 'save without .npy', RangeError);
  await expectRejects(t, db.save(undefined as unknown as string), 'E_INPUT', /for path but received undefined/, 'save(undefined)', TypeError);
  await expectRejects(t, FaceDatabase.load(''), 'E_INPUT', /^Expected a file or folder path for path but received ""$/, 'load("")', TypeError);
  await expectRejects(t, FaceDatabase.load(path.join(dir, 'x.npy'), { threshold: -2 }), 'E_INPUT', /for options.threshold but received number -2/, 'load threshold', RangeError);
  write(dir, 'faces.bin', 'x');
  await expectRejects(t, FaceDatabase.load(path.join(dir, 'faces.bin')), 'E_INPUT',
    /^Expected a face database's .npy or .json file, or the folder of the seed's files for path but received ".*faces.bin"$/, 'load of another kind of file', RangeError);
  await expectRejects(t, FaceDatabase.load(path.join(dir, 'absent.npy')), 'E_INPUT', /^Cannot read the face database .*absent.npy: ENOENT/, 'load of a missing file');
});

t.test('fromDirectory: both layouts, sorted, with a report', async (t) => {
  const dir = tempDir(t);
  // Folder per person, the seed's flat layout, and things that are not images.
  write(dir, 'Bob/b.jpeg');
  write(dir, 'Alice/2.png');
  write(dir, 'Alice/1.JPG');
  write(dir, 'Alice/notes.txt', 'not an image');
  write(dir, 'Alice/deeper/3.jpg'); // below a person's folder: ignored
  write(dir, 'Carol_2.jpg');
  write(dir, 'Carol_1_smile.jpg');
  write(dir, 'Dave.webp');
  write(dir, '.hidden_1.jpg');
  write(dir, 'Eve_1.jpg', '[]'); // no face
  write(dir, 'Frank_1.png', JSON.stringify([{ key: 'small', w: 5, h: 5 }, { key: 'big', w: 20, h: 30 }, { key: 'wide', w: 40, h: 10 }]));
  write(dir, 'Gina_1.bmp', 'CORRUPT');
  const engine = new StubEngine();
  const progress: EnrolmentProgress[] = [];
  const db = await FaceDatabase.fromDirectory(dir, engine, { onProgress: (p) => progress.push({ ...p }) });
  const j = (...parts: string[]) => path.join(dir, ...parts);
  const order = [j('Alice', '1.JPG'), j('Alice', '2.png'), j('Bob', 'b.jpeg'), j('Carol_1_smile.jpg'), j('Carol_2.jpg'), j('Dave.webp'), j('Eve_1.jpg'), j('Frank_1.png'), j('Gina_1.bmp')];
  t.same(engine.calls[0], order.slice(0, 8), 'the first batch: 8 images in sorted order');
  t.same(progress, order.map((file, k) => ({ done: k + 1, total: order.length, file })), 'onProgress after each image, in order');
  t.same(db.report!.enrolled, [
    { file: order[0], name: 'Alice' },
    { file: order[1], name: 'Alice' },
    { file: order[2], name: 'Bob' },
    { file: order[3], name: 'Carol' },
    { file: order[4], name: 'Carol' },
    { file: order[5], name: 'Dave' },
    { file: order[7], name: 'Frank' },
  ], 'enrolled: names from the folder, or left of the first "_", or the whole base name');
  t.same(db.report!.noFace, [order[6]], 'the image without a face is reported');
  t.equal(db.report!.failed.length, 1, 'one failure');
  t.equal(db.report!.failed[0].file, order[8], 'the corrupt image is reported as failed');
  t.match(db.report!.failed[0].error, /^Cannot decode .*Gina_1.bmp: Input buffer contains unsupported image format$/, 'with the engine message');
  t.same(db.names(), ['Alice', 'Bob', 'Carol', 'Dave', 'Frank'], 'names(): distinct and sorted');
  t.equal(db.size, 7, 'one entry per enrolled image');
  t.equal(db.dim, DIM, 'dim from the engine');
  t.equal(db.embedder, 'stub-embedder', "the engine's embedder name");
  t.equal(db.threshold, 0.6, "the engine's threshold");
  const entries = [...db.entries()];
  t.same(Array.from(entries[0].embedding), Array.from(vectorFor('1.JPG')), 'entry 0 holds the first image\'s embedding');
  t.same(Array.from(entries[6].embedding), Array.from(vectorFor('big')), 'the largest face (20×30) is kept, not the first or the widest');
  t.ok(Object.isFrozen(db.report) && Object.isFrozen(db.report!.enrolled), 'the report is read-only');
  t.equal(new FaceDatabase().report, null, 'a database made otherwise has no report');

  const ext = await FaceDatabase.fromDirectory(dir, new StubEngine(), { extensions: ['PNG'], threshold: 0.4 });
  t.same(ext.report!.enrolled.map((e) => path.basename(e.file)), ['2.png', 'Frank_1.png'], 'extensions option (case-insensitive, dot optional)');
  t.equal(ext.threshold, 0.4, 'options.threshold overrides the engine');

  // Sorted by the path below dir (code point order), not in folder-walking order: 'Al-b.jpg' ('-' is
  // 0x2d) before 'Al/x.jpg' ('/' is 0x2f), though the folder 'Al' is listed before the file 'Al-b.jpg'.
  const sortDir = tempDir(t);
  write(sortDir, 'Al/x.jpg');
  write(sortDir, 'Al-b.jpg');
  const sorted = await FaceDatabase.fromDirectory(sortDir, new StubEngine());
  t.same(sorted.report!.enrolled, [{ file: path.join(sortDir, 'Al-b.jpg'), name: 'Al-b' }, { file: path.join(sortDir, 'Al', 'x.jpg'), name: 'Al' }], 'sorted by relative path');

  t.equal(nameFromFile('张学友_1.jpg'), '张学友', 'non-ASCII names');
  t.equal(nameFromFile('_1.jpg'), '_1', 'nothing left of "_": the whole base name');

  const empty = await FaceDatabase.fromDirectory(tempDir(t), new StubEngine());
  t.same([empty.size, empty.report!.enrolled.length, empty.dim], [0, 0, DIM], 'an empty folder: an empty database');
});

t.test('fromDirectory: batches, and a failing batch retried image by image', async (t) => {
  const dir = tempDir(t);
  for (let k = 0; k < 9; k++) write(dir, `P${k}_1.jpg`, k === 2 ? 'CORRUPT' : '');
  const engine = new StubEngine();
  const db = await FaceDatabase.fromDirectory(dir, engine, { batchSize: 4 });
  const f = (k: number) => path.join(dir, `P${k}_1.jpg`);
  t.same(engine.calls, [[f(0), f(1), f(2), f(3)], [f(0)], [f(1)], [f(2)], [f(3)], [f(4), f(5), f(6), f(7)], [f(8)]],
    'one call per batch; the batch with the corrupt image again one by one');
  t.same(db.names(), ['P0', 'P1', 'P3', 'P4', 'P5', 'P6', 'P7', 'P8'], 'the other images of that batch are enrolled');
  t.same(db.report!.failed.map((e) => e.file), [f(2)], 'only the corrupt one failed');

  // Errors of the engine itself (not of one image) stop the enrolment.
  const disposed = new StubEngine();
  disposed.embed = async () => {
    throw new FaceError('E_STATE', 'The face engine has been disposed');
  };
  await expectRejects(t, FaceDatabase.fromDirectory(dir, disposed), 'E_STATE', /^The face engine has been disposed$/, 'a disposed engine');
  const buggy = new StubEngine();
  buggy.embed = async (inputs) => inputs.slice(1).map(() => []);
  await expectRejects(t, FaceDatabase.fromDirectory(dir, buggy), 'E_INTERNAL', /^engine.embed returned an array of length 7 for 8 images/, 'an engine returning too few lists');
  const badVector = new StubEngine();
  badVector.embed = async (inputs) => inputs.map(() => [{ box: { x: 0, y: 0, width: 1, height: 1 }, score: 1, embedding: new Float32Array(7) }]);
  await expectRejects(t, FaceDatabase.fromDirectory(dir, badVector), 'E_INTERNAL', /^The engine returned Float32Array of length 7 as the embedding of .*P0_1.jpg \(expected a Float32Array of length 4\)$/, 'an embedding of the wrong length');
  const noFace = new StubEngine();
  noFace.embed = async (inputs) => {
    if (inputs.length > 1) throw new FaceError('E_NO_FACE', 'no face');
    return [[]];
  };
  const none = await FaceDatabase.fromDirectory(dir, noFace, { batchSize: 3 });
  t.same([none.size, none.report!.noFace.length, none.report!.failed.length], [0, 9, 0], 'E_NO_FACE for an image counts as no face');
  const nan = new StubEngine();
  nan.embed = async (inputs) => inputs.map(() => [{ box: { x: 0, y: 0, width: 1, height: 1 }, score: 1, embedding: new Float32Array([NaN, 0, 0, 0]) }]);
  const nanDb = await FaceDatabase.fromDirectory(dir, nan);
  t.same([nanDb.size, nanDb.report!.failed.length], [0, 9], 'NaN embeddings are reported as failures, not stored');
  t.match(nanDb.report!.failed[0].error, /holds NaN at index 0/, 'with the reason');
});

t.test('add, remove, names, size, entries', async (t) => {
  const db = new FaceDatabase();
  t.same([db.size, db.dim, db.names(), [...db.entries()]], [0, null, [], []], 'empty');
  const people = ['Zoë', '张学友', 'Bob', 'Alice'];
  const added: [string, Float32Array][] = [];
  for (let k = 0; k < 40; k++) {
    const name = people[k % people.length];
    const v = vectorFor(`${name}-${k}`, 16);
    t.equal(db.add(name, v), k, `add returns index ${k}`);
    added.push([name, v]);
  }
  t.same([db.size, db.dim], [40, 16], 'size and dim (past the initial capacity of 16)');
  const expected = added.map(([n, v]) => [n, Array.from(v)] as const);
  t.same(rows(db), expected, 'entries() in order, with the same values');
  t.same(db.names(), ['Alice', 'Bob', 'Zoë', '张学友'], 'names() sorted by code point');
  added[0][1][0] = 99;
  t.not([...db.entries()][0].embedding[0], 99, 'add copied the embedding');
  const first = db.entries().next().value!;
  first.embedding[1] = 99;
  t.not([...db.entries()][0].embedding[1], 99, 'entries() hands out copies');
  t.equal(db.remove('Bob'), 10, 'remove returns how many entries went');
  t.equal(db.remove('Bob'), 0, 'removing again: 0');
  t.equal(db.remove('Nobody'), 0, 'an unknown name: 0');
  t.equal(db.size, 30, 'size after remove');
  t.same(db.names(), ['Alice', 'Zoë', '张学友'], 'names after remove');
  t.same(rows(db), expected.filter(([n]) => n !== 'Bob'), 'the remaining entries keep their order and values');
  db.add('Bob', vectorFor('late', 16));
  t.same([db.size, [...db.entries()][30].name], [31, 'Bob'], 'add after remove appends');
  for (const name of db.names()) db.remove(name);
  t.same([db.size, db.dim, db.names()], [0, 16, []], 'emptied: the dimension stays');
  await expectRejects(t, Promise.resolve().then(() => db.add('x', new Float32Array(4))), 'E_INPUT', /length 16/, 'the emptied database keeps its dimension', RangeError);
});

t.test('match: the seed\'s compare_faces', async (t) => {
  // Against a float64 hand computation on random vectors.
  const random = new SeededRandom(5);
  const dim = 24;
  const entries: [string, Float32Array][] = Array.from({ length: 37 }, (_, k) => [`p${k % 9}`, random.uniformArray(dim, -1, 1)]);
  const db = databaseOf(entries);
  const query = random.uniformArray(dim, -1, 1);
  const hand = entries.map(([, v]) => Math.sqrt(v.reduce((s, x, i) => s + (x - query[i]) ** 2, 0)));
  const sorted = [...hand].sort((a, b) => a - b);
  const nearest = hand.indexOf(sorted[0]);
  const threshold = (sorted[4] + sorted[5]) / 2; // five entries within it, none near the boundary
  const m = await db.match(query, { threshold });
  t.ok(m.distances instanceof Float32Array && m.distances.length === 37, 'a distance per entry');
  const worst = Math.max(...hand.map((d, k) => Math.abs(d - m.distances[k])));
  t.ok(worst < 1e-5, `distances equal the hand computation (max error ${worst})`);
  t.equal(m.index, nearest, 'index: the nearest entry');
  t.equal(m.name, entries[nearest][0], 'name: the nearest entry\'s, within the threshold');
  t.ok(Math.abs(m.distance - sorted[0]) < 1e-5, 'distance: the nearest');
  t.same(m.matches, hand.map((d) => d <= threshold), 'matches: distance ≤ threshold per entry');
  t.equal(m.matches.filter(Boolean).length, 5, 'five matches');
  const far = await db.match(query, { threshold: sorted[0] / 2 });
  t.same([far.name, far.index, far.matches.some(Boolean)], ['Unknown', nearest, false], "beyond the threshold: 'Unknown', still the nearest index");

  // The boundary: a distance exactly equal to the threshold is a match (distance <= threshold).
  const exact = databaseOf([['Zero', new Float32Array(4)], ['Far', new Float32Array([0, 0, 0, 3])]]);
  const q = new Float32Array([0.5, 0, 0, 0]);
  const at = await exact.match(q, { threshold: 0.5 });
  t.same([at.name, at.distance, at.index, at.matches, Array.from(at.distances)], ['Zero', 0.5, 0, [true, false], [0.5, Math.sqrt(9.25)].map(Math.fround)],
    'distance 0.5, threshold 0.5: a match');
  const below = await exact.match(q, { threshold: 0.4999 });
  t.same([below.name, below.distance, below.matches], ['Unknown', 0.5, [false, false]], 'threshold 0.4999: Unknown');
  const self = await exact.match(new Float32Array([0, 0, 0, 3]), { threshold: 0 });
  t.same([self.name, self.distance], ['Far', 0], 'an entry matches itself at threshold 0 (distance exactly 0)');

  // Ties: the lower index wins.
  const tie = databaseOf([['first', new Float32Array([1, 0])], ['second', new Float32Array([-1, 0])]]);
  t.equal((await tie.match(new Float32Array([0, 0]), { threshold: 2 })).name, 'first', 'equal distances: the first entry');

  // The threshold: the database's unless given.
  const withDefault = databaseOf([['Zero', new Float32Array(4)]], { threshold: 0.5 });
  t.equal((await withDefault.match(q)).name, 'Zero', "the database's threshold");
  t.equal((await withDefault.match(q, { threshold: 0.1 })).name, 'Unknown', 'options.threshold overrides it');

  // An empty database.
  const empty = await new FaceDatabase().match(q, { threshold: 1 });
  t.same([empty.name, empty.distance, empty.index, empty.matches, empty.distances.length], ['Unknown', Infinity, -1, [], 0], 'empty database');

  // matchMany: one call, the same answers as match.
  const queries = [query, entries[3][1], random.uniformArray(dim, -1, 1)];
  const many = await db.matchMany(queries, { threshold });
  const one = await Promise.all(queries.map((x) => db.match(x, { threshold })));
  t.same(many.map((r) => [r.name, r.index, r.distance, r.matches, Array.from(r.distances)]), one.map((r) => [r.name, r.index, r.distance, r.matches, Array.from(r.distances)]),
    'matchMany equals match per query');
  t.equal(many[1].index, 3, 'an entry as query finds itself');
  t.equal(many[1].distance, 0, 'at distance 0');
  t.same(await db.matchMany([], { threshold }), [], 'no queries');

  // A search sees the database as it was when it started.
  const live = databaseOf([['A', new Float32Array([0, 0])], ['B', new Float32Array([5, 5])]]);
  const pending = live.match(new Float32Array([0.1, 0]), { threshold: 1 });
  live.remove('A');
  live.add('C', new Float32Array([0.1, 0]));
  const before = await pending;
  t.same([before.name, before.matches.length], ['A', 2], 'remove/add during a search do not change its result');
  t.same((await live.match(new Float32Array([0.1, 0]), { threshold: 1 })).name, 'C', 'the next search sees them');
});

t.test('save and load', async (t) => {
  const dir = tempDir(t);
  const names = ['Zoë', '张学友', 'Zoë', 'Bob', '𝒜lice'];
  const db = databaseOf(names.map((n, k) => [n, vectorFor(`${n}${k}`, 8)]), { threshold: 0.7, embedder: 'facenet-mobilenet' });
  const file = path.join(dir, 'faces.npy');
  await db.save(file);
  t.same(fs.readdirSync(dir).sort(), ['faces.json', 'faces.names.npy', 'faces.npy'], 'three files, no temporary ones left');
  const emb = decodeNpy(fs.readFileSync(file));
  t.same([emb.dtype, emb.shape], ['float32', [5, 8]], 'faces.npy: float32 [N, dim]');
  const nm = decodeNpy(fs.readFileSync(path.join(dir, 'faces.names.npy')));
  t.same([nm.dtype, nm.shape, nm.data], ['unicode', [5], names], "faces.names.npy: '<U' names");
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'faces.json'), 'utf8'));
  const sha = (f: string) => createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex');
  t.same(json, {
    format: 'facesight-face-database', version: 1, embedder: 'facenet-mobilenet', dim: 8, count: 5, threshold: 0.7,
    files: { embeddings: 'faces.npy', names: 'faces.names.npy' },
    sha256: { embeddings: sha('faces.npy'), names: sha('faces.names.npy') },
  }, 'faces.json describes both files');

  const back = await FaceDatabase.load(file);
  t.same(rows(back), rows(db), 'load: the same entries in the same order');
  t.same([back.size, back.dim, back.embedder, back.threshold, back.names()], [5, 8, 'facenet-mobilenet', 0.7, db.names()], 'and the same description');
  t.same(rows(await FaceDatabase.load(path.join(dir, 'faces.json'))), rows(db), 'load through the .json path');
  t.equal((await FaceDatabase.load(file, { threshold: 0.2 })).threshold, 0.2, 'options.threshold overrides the saved one');
  const m = await back.match(vectorFor('张学友1', 8));
  t.same([m.name, m.index], ['张学友', 1], 'the loaded database matches');
  back.add('New', vectorFor('new', 8));
  t.equal(back.size, 6, 'a loaded database grows');
  await back.save(file);
  t.same((await FaceDatabase.load(file)).names(), ['Bob', 'New', 'Zoë', '张学友', '𝒜lice'], 'saved again over the old files');

  fs.rmSync(path.join(dir, 'faces.json'));
  const noJson = await FaceDatabase.load(file);
  t.same([noJson.size, noJson.embedder, noJson.threshold], [6, null, null], 'without the .json: the two .npy files, nothing known of the model');

  const emptyFile = path.join(dir, 'empty.npy');
  await new FaceDatabase().save(emptyFile);
  const empty = await FaceDatabase.load(emptyFile);
  t.same([empty.size, empty.dim, empty.names()], [0, null, []], 'an empty database round trip');
  await new FaceDatabase({ dim: 128 }).save(emptyFile);
  t.equal((await FaceDatabase.load(emptyFile)).dim, 128, 'an empty database keeps its dim');
});

t.test("load: the seed's files", async (t) => {
  const dir = tempDir(t);
  const modelData = path.join(dir, 'model_data');
  fs.mkdirSync(modelData);
  const names = ['Obama', '张学友', 'Zoë'];
  const vectors = names.map((n) => vectorFor(n, 128));
  const encodings = new Float32Array(3 * 128);
  vectors.forEach((v, k) => encodings.set(v, k * 128));
  // retinaface.py: np.save("model_data/{backbone}_face_encoding.npy", face_encodings); np.save(".../{backbone}_names.npy", names)
  fs.writeFileSync(path.join(modelData, 'mobilenet_face_encoding.npy'), encodeNpy({ dtype: 'float32', shape: [3, 128], data: encodings }));
  fs.writeFileSync(path.join(modelData, 'mobilenet_names.npy'), encodeNpy({ dtype: 'unicode', shape: [3], data: names }));
  for (const given of [modelData, path.join(modelData, 'mobilenet_face_encoding.npy')]) {
    const db = await FaceDatabase.load(given, { threshold: 0.9 });
    t.same([db.size, db.dim, db.embedder, db.threshold], [3, 128, null, 0.9], `${path.basename(given)}: size, dim; the model is unknown`);
    t.same(rows(db), names.map((n, k) => [n, Array.from(vectors[k])]), `${path.basename(given)}: entries`);
  }
  const db = await FaceDatabase.load(modelData);
  t.equal(db.threshold, null, 'no threshold in the seed files');
  t.equal((await db.match(vectorFor('张学友', 128), { threshold: 0.9 })).name, '张学友', 'matches');

  // Plain names (face_encoding.npy + names.npy) and float64 encodings.
  const plain = path.join(dir, 'plain');
  fs.mkdirSync(plain);
  fs.writeFileSync(path.join(plain, 'face_encoding.npy'), encodeNpy({ dtype: 'float64', shape: [3, 128], data: Float64Array.from(encodings) }));
  fs.writeFileSync(path.join(plain, 'names.npy'), encodeNpy({ dtype: 'unicode', shape: [3], data: names }));
  t.same(rows(await FaceDatabase.load(plain)), rows(db), 'face_encoding.npy with names.npy, float64 converted to float32');

  // The seed's encode_face_dataset keeps the name of an image without a face: the counts differ.
  fs.writeFileSync(path.join(plain, 'names.npy'), encodeNpy({ dtype: 'unicode', shape: [4], data: [...names, 'NoFace'] }));
  await expectRejects(t, FaceDatabase.load(plain), 'E_DATABASE',
    /^.*names.npy holds 4 names but .*face_encoding.npy holds 3 embeddings \(the seed's encode_face_dataset keeps the names of images in which it found no face/, 'seed names and encodings of different counts');

  // An empty seed database: np.save([]) twice (float64, shape (0,)).
  const none = path.join(dir, 'none');
  fs.mkdirSync(none);
  for (const f of ['mobilenet_face_encoding.npy', 'mobilenet_names.npy']) fs.writeFileSync(path.join(none, f), encodeNpy({ dtype: 'float64', shape: [0], data: new Float64Array(0) }));
  t.same([(await FaceDatabase.load(none)).size, (await FaceDatabase.load(none)).dim], [0, null], 'an empty seed database');

  await expectRejects(t, FaceDatabase.load(tempDir(t)), 'E_DATABASE', /holds no face database: expected a \*face_encoding.npy file with \*names.npy beside it/, 'a folder without one');
  fs.copyFileSync(path.join(modelData, 'mobilenet_face_encoding.npy'), path.join(modelData, 'iresnet_face_encoding.npy'));
  await expectRejects(t, FaceDatabase.load(modelData), 'E_INPUT',
    /holds several face databases \(iresnet_face_encoding.npy, mobilenet_face_encoding.npy\): pass the path of one of them/, 'a folder with two');
  await expectRejects(t, FaceDatabase.load(path.join(modelData, 'iresnet_face_encoding.npy')), 'E_DATABASE', /iresnet_names.npy is missing/, 'a seed file without its names');
});

t.test('damaged databases: E_DATABASE, never a crash', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'faces.npy');
  const namesFile = path.join(dir, 'faces.names.npy');
  const jsonFile = path.join(dir, 'faces.json');
  const db = databaseOf(Array.from({ length: 20 }, (_, k) => [`person${k}`, vectorFor(`v${k}`, 128)] as [string, Float32Array]), { threshold: 1, embedder: 'm' });
  const reset = async () => db.save(file);
  await reset();
  const good = fs.readFileSync(file);

  fs.writeFileSync(file, good.subarray(0, good.length >> 1));
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', new RegExp(`^${escape(file)} is truncated: expected 10240 bytes of data but found 5056$`), 'the embeddings cut in half');
  await reset();
  const goodNames = fs.readFileSync(namesFile);
  fs.writeFileSync(namesFile, goodNames.subarray(0, goodNames.length >> 1));
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', new RegExp(`^${escape(namesFile)} is truncated`), 'the names cut in half');
  fs.rmSync(namesFile);
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', new RegExp(`^${escape(namesFile)} is missing: the face database ${escape(file)} keeps its names there$`), 'the names missing');
  await reset();

  // A valid .npy that is not the one saved: the checksum tells.
  const other = new Float32Array(20 * 128).fill(0.1);
  fs.writeFileSync(file, encodeNpy({ dtype: 'float32', shape: [20, 128], data: other }));
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE',
    new RegExp(`^${escape(file)} does not match the SHA-256 recorded in ${escape(jsonFile)}: the file was changed after the database was saved, or a save was interrupted$`), 'embeddings replaced');
  await reset();
  const json = JSON.parse(fs.readFileSync(jsonFile, 'utf8'));
  const writeJson = (change: Record<string, unknown>) => fs.writeFileSync(jsonFile, JSON.stringify({ ...json, ...change }));
  writeJson({ count: 21 });
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', /faces.json describes 21 embeddings of length 128 but .*faces.npy holds 20 of length 128/, 'json count wrong');
  writeJson({ version: 2 });
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', /faces.json was written by a newer facesight \(format version 2; this one reads version 1\)/, 'a newer version');
  writeJson({ format: 'something-else' });
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', /faces.json is not a valid face database description: format is "something-else"/, 'another format');
  writeJson({ sha256: { embeddings: 'abc' } });
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', /sha256 is not \{ embeddings, names \}/, 'bad sha256 field');
  fs.writeFileSync(jsonFile, '{"format": "facesight-face-database", "vers');
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', /faces.json is not a valid face database description: .*JSON/, 'json cut short');
  await reset();

  // Files that parse but hold the wrong things (without a .json, which would catch them first).
  fs.rmSync(jsonFile);
  const nan = new Float32Array(20 * 128);
  nan[130] = NaN;
  fs.writeFileSync(file, encodeNpy({ dtype: 'float32', shape: [20, 128], data: nan }));
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', /faces.npy holds NaN in embedding 1 \(value 2\)/, 'NaN in the embeddings');
  fs.writeFileSync(file, encodeNpy({ dtype: 'float64', shape: [1, 1], data: new Float64Array([1e300]) }));
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', /holds Infinity in embedding 0 \(value 0, after conversion to float32\)/, 'float64 beyond float32');
  fs.writeFileSync(file, encodeNpy({ dtype: 'unicode', shape: [20], data: Array(20).fill('x') }));
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', /faces.npy holds strings, not embeddings/, 'names as embeddings');
  fs.writeFileSync(file, encodeNpy({ dtype: 'float32', shape: [128], data: new Float32Array(128) }));
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', /holds a 1-D array of 128 values; expected a 2-D array/, '1-D embeddings');
  fs.writeFileSync(file, encodeNpy({ dtype: 'float32', shape: [20, 100000], data: new Float32Array(2e6) }));
  const huge = await FaceDatabase.load(file);
  t.same([huge.size, huge.dim], [20, 100000], 'any embedding length a file holds loads (no option limit applies)');
  await reset();
  fs.rmSync(jsonFile);
  fs.writeFileSync(namesFile, encodeNpy({ dtype: 'float32', shape: [20], data: new Float32Array(20) }));
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', /faces.names.npy holds float32 numbers; expected a 1-D array of names/, 'numbers as names');

  // Garbage in every file, at every length: always a FaceError, never a crash.
  await reset();
  const originals = [file, namesFile, jsonFile].map((f) => [f, fs.readFileSync(f)] as const);
  const random = new SeededRandom(3);
  const wrong: string[] = [];
  let cases = 0;
  for (const [target, bytes] of originals) {
    for (let k = 0; k < 25; k++) {
      const damaged = k < 12 ? bytes.subarray(0, Math.floor(random.uniform(0, bytes.length))) : Buffer.from(bytes);
      if (k >= 12) for (let f = 0; f < 3; f++) damaged[Math.floor(random.uniform(0, damaged.length))] = Math.floor(random.uniform(0, 256));
      fs.writeFileSync(target, damaged);
      cases++;
      try {
        await FaceDatabase.load(file);
        if (Buffer.compare(damaged, bytes) !== 0 && target !== jsonFile) wrong.push(`${path.basename(target)} case ${k}: loaded`);
      } catch (error) {
        if (!(error instanceof FaceError) || (error as FaceError).code !== 'E_DATABASE') wrong.push(`${path.basename(target)} case ${k}: ${(error as Error)?.stack ?? error}`);
      }
      fs.writeFileSync(target, bytes);
    }
  }
  t.same(wrong, [], `${cases} damaged databases: each refused with E_DATABASE (a damaged .npy never loads past the checksums)`);
});

t.test('an interrupted save leaves the previous database loadable, or refused, never mixed', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'faces.npy');
  const before = databaseOf([['Old', vectorFor('old')], ['Older', vectorFor('older')]], { threshold: 1 });
  await before.save(file);
  const after = databaseOf([['New', vectorFor('new')]], { threshold: 1 });

  const realRename = fs.promises.rename;
  t.teardown(() => {
    fs.promises.rename = realRename;
  });
  /** Makes the n-th rename (1-based) from now fail like a crash at that point. */
  const failRename = (n: number) => {
    let calls = 0;
    fs.promises.rename = (async (from: fs.PathLike, to: fs.PathLike) => {
      if (++calls === n) throw Object.assign(new Error(`EIO: i/o error, rename '${from}' -> '${to}'`), { code: 'EIO' });
      return realRename(from, to);
    }) as typeof fs.promises.rename;
  };

  failRename(1);
  await expectRejects(t, after.save(file), 'E_INPUT', /^Cannot save the face database .*faces.npy: EIO: i\/o error, rename .* \(the previous database there, if any, is unchanged\)$/, 'the first rename fails');
  fs.promises.rename = realRename;
  t.same(fs.readdirSync(dir).sort(), ['faces.json', 'faces.names.npy', 'faces.npy'], 'the temporary files are removed');
  t.same(rows(await FaceDatabase.load(file)), rows(before), 'the previous database still loads, unchanged');

  failRename(2);
  await expectRejects(t, after.save(file), 'E_INPUT', /only faces.npy were replaced, so the database there will not load until it is saved again\)$/, 'the second rename fails');
  fs.promises.rename = realRename;
  t.same(fs.readdirSync(dir).sort(), ['faces.json', 'faces.names.npy', 'faces.npy'], 'no temporary files left');
  await expectRejects(t, FaceDatabase.load(file), 'E_DATABASE', /faces.npy does not match the SHA-256 recorded in .*faces.json: .*or a save was interrupted/,
    'new embeddings with old names are refused, not paired');
  await after.save(file);
  t.same(rows(await FaceDatabase.load(file)), rows(after), 'saving again repairs it');

  // A target that cannot be replaced (a folder where the .npy should go): nothing is left behind.
  const other = path.join(dir, 'other.npy');
  fs.mkdirSync(other);
  fs.writeFileSync(path.join(other, 'keep'), '');
  await expectRejects(t, after.save(other), 'E_INPUT', /^Cannot save the face database .*other.npy: .*\(the previous database there, if any, is unchanged\)$/, 'the target is a folder');
  t.same(fs.readdirSync(dir).sort(), ['faces.json', 'faces.names.npy', 'faces.npy', 'other.npy'], 'no temporary files left');
});

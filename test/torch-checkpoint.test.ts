// PyTorch checkpoint reader: hand-built zip and legacy checkpoints (pickles assembled opcode by
// opcode, zip archives header by header), bad input of every kind, and the three real files under
// shared/data/weights checked against their .keys.txt listings and raw bytes.
import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { FaceError } from '../lib/errors';
import { PickledObject, readTorchCheckpoint, readTorchObject, toFloat32, type TorchTensor } from '../lib/convert/torch-checkpoint';
import { dataPath } from './helpers/data';
import { PickleWriter, buildZip, f32, i64, swapped, u16, writeTensor } from './helpers/torch-writer';

/** dataPath with tap's Test (whose skip() signature differs from the helper's minimal interface). */

// The zip-format fixture: a = float32 [2,3]; at = a.t() (stride [1,3]); col = a[:, 1] (offset 1,
// stride [3]); row = a[1] as a Parameter (offset 3); n = int64 scalar; h = float16 [3].
const A = [1.5, -2, 3.25, 4, 5.5, -6];
const N = 12345678901234n;
const H = [0x3c00, 0xc000, 0x3800]; // 1, -2, 0.5

interface ZipOptions {
  protocol4?: boolean;
  deflate?: boolean;
  nested?: boolean; // {'epoch': 7, 'state_dict': OrderedDict(...)} with 'module.' keys
  bigEndian?: boolean;
  extra?: (p: PickleWriter) => void; // more entries inside the state dict
}

function zipDataPkl(o: ZipOptions = {}): Uint8Array {
  const p = new PickleWriter(o.protocol4);
  const prefix = o.nested ? 'module.' : '';
  if (o.nested) p.emptyDict().put();
  if (o.nested) p.mark().str('epoch').int(7).str('state_dict');
  p.orderedDict().put();
  p.mark();
  p.str(`${prefix}a`);
  writeTensor(p, { storage: 'FloatStorage', key: '0', numel: 6, offset: 0, size: [2, 3], stride: [3, 1] });
  p.str(`${prefix}at`);
  writeTensor(p, { storage: 'FloatStorage', key: '0', numel: 6, offset: 0, size: [3, 2], stride: [1, 3] });
  p.str(`${prefix}col`);
  writeTensor(p, { storage: 'FloatStorage', key: '0', numel: 6, offset: 1, size: [2], stride: [3] });
  p.str(`${prefix}row`);
  writeTensor(p, { storage: 'FloatStorage', key: '0', numel: 6, offset: 3, size: [3], stride: [1], parameter: true });
  p.str(`${prefix}n`);
  writeTensor(p, { storage: 'LongStorage', key: '1', numel: 1, offset: 0, size: [], stride: [] });
  p.str(`${prefix}h`);
  writeTensor(p, { storage: 'HalfStorage', key: '2', numel: 3, offset: 0, size: [3], stride: [1] });
  o.extra?.(p);
  p.setItems();
  if (o.nested) p.setItems();
  return p.stop();
}

function zipCheckpoint(o: ZipOptions = {}, pkl = zipDataPkl(o)) {
  const order = o.bigEndian ? (b: Uint8Array, n: number) => swapped(b, n) : (b: Uint8Array) => b;
  return buildZip([
    { name: 'archive/data.pkl', data: pkl, deflate: o.deflate },
    { name: 'archive/byteorder', data: Buffer.from(o.bigEndian ? 'big' : 'little') },
    { name: 'archive/data/0', data: order(f32(A), 4), deflate: o.deflate },
    { name: 'archive/data/1', data: order(i64([N]), 8), deflate: o.deflate },
    { name: 'archive/data/2', data: order(u16(H), 2), deflate: o.deflate },
    { name: 'archive/version', data: Buffer.from('3\n') },
    { name: 'archive/.data/serialization_id', data: Buffer.from('0123456789') },
  ]);
}

/** A legacy-format checkpoint: {'epoch': 3, 'arch': 'x', 'state_dict': OrderedDict(module.*),
 * 'best': numpy scalar}. Storage k1 = 4 floats (w [2,2], its transpose, and a storage view of its last
 * two elements), k2 = 2 int64; the key list names k2 first. */
const K1 = [0.25, -1, 2, 8];
function legacyCheckpoint(): Uint8Array {
  const magic = Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);
  const version = Uint8Array.from([0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e]);
  const sys = new PickleWriter();
  sys.emptyDict().put();
  sys.mark().str('protocol_version').int(1001).str('little_endian').bool(true).str('type_sizes');
  sys.emptyDict().put().mark().str('short').int(2).str('int').int(4).str('long').int(4).setItems();
  sys.setItems();
  const obj = new PickleWriter();
  obj.emptyDict().put();
  obj.mark().str('epoch').int(3).str('arch').str('x').str('state_dict');
  obj.orderedDict().put().mark();
  obj.str('module.w');
  writeTensor(obj, { storage: 'FloatStorage', key: 'k1', numel: 4, offset: 0, size: [2, 2], stride: [2, 1], view: null });
  obj.str('module.b');
  writeTensor(obj, { storage: 'LongStorage', key: 'k2', numel: 2, offset: 0, size: [2], stride: [1], view: null });
  obj.str('module.v');
  writeTensor(obj, { storage: 'FloatStorage', key: 'k1', numel: 4, offset: 0, size: [2], stride: [1], view: ['k1v', 2, 2] });
  obj.str('module.t');
  writeTensor(obj, { storage: 'FloatStorage', key: 'k1', numel: 4, offset: 0, size: [2, 2], stride: [1, 2], view: null });
  obj.setItems();
  // numpy.core.multiarray.scalar(numpy.dtype('f8', False, True), _codecs.encode('...', 'latin1'))
  obj.str('best').global('numpy.core.multiarray', 'scalar').mark();
  obj.global('numpy', 'dtype').mark().str('f8').bool(false).bool(true).tuple().reduce();
  obj.global('_codecs', 'encode').mark().str('\u0000\u0000\u0000\u0000\u0000\u0000\u00e0\u003f').str('latin1').tuple().reduce();
  obj.tuple().reduce();
  obj.setItems();
  const keys = new PickleWriter();
  keys.emptyList().put().mark().str('k2').str('k1').appends();
  const storage = (count: number, data: Uint8Array) => {
    const header = Buffer.alloc(8);
    header.writeBigInt64LE(BigInt(count));
    return Buffer.concat([header, data]);
  };
  return new Uint8Array(
    Buffer.concat([magic, version, sys.stop(), obj.stop(), keys.stop(), storage(2, i64([7n, -9n])), storage(4, f32(K1))]),
  );
}

// ---------------------------------------------------------------------------------------------
// Assertions

/** 'ok', 'E_MODEL' or a description of any other exception. */
function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (error) {
    if (error instanceof FaceError && (error as FaceError).code === 'E_MODEL' && (error as Error).name === 'FaceError') return 'E_MODEL';
    return `${(error as Error)?.name}: ${(error as Error)?.message}`;
  }
}

function expectModelError(t: tap.Test, fn: () => unknown, message: RegExp, what: string): void {
  try {
    fn();
    t.fail(`${what}: expected a FaceError`);
  } catch (error) {
    const ok = error instanceof FaceError && (error as FaceError).code === 'E_MODEL' && (error as Error).name === 'FaceError';
    t.ok(ok, `${what}: a FaceError with code E_MODEL (got ${String(error)})`);
    t.match((error as Error).message, message, `${what}: message`);
  }
}

function values(tensor: TorchTensor | undefined): unknown[] {
  return tensor ? Array.from(tensor.data as ArrayLike<unknown>) : [];
}

// ---------------------------------------------------------------------------------------------

t.test('invalid input', async (t) => {
  const read = (bytes: Uint8Array) => () => readTorchCheckpoint(bytes, 'model.pth');
  expectModelError(t, read(new Uint8Array(0)), /^Expected a PyTorch checkpoint .* for model\.pth but received an empty buffer$/, 'empty buffer');

  t.throws(() => readTorchCheckpoint('model.pth' as unknown as Uint8Array), { name: 'TypeError', code: 'E_INPUT', message: /^Expected a Uint8Array or Buffer for the bytes of a PyTorch checkpoint but received "model.pth"$/ }, 'not bytes: a TypeError');

  // Random bytes: as they come, and behind a pickle or a zip signature.
  let seed = 12345;
  const random = (n: number) => Uint8Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff);
  const noise = random(4096);
  noise[0] = 0x3c;
  expectModelError(t, read(noise), /^Expected a PyTorch checkpoint .* but received 4096 bytes starting with 3c /, 'random bytes');
  const pickleNoise = random(4096);
  pickleNoise[0] = 0x80;
  pickleNoise[1] = 0x02;
  expectModelError(t, read(pickleNoise), /^(Malformed|Unsupported) PyTorch checkpoint \(model\.pth\): /, 'random bytes after a pickle header');
  const zipNoise = random(4096);
  zipNoise.set([0x50, 0x4b, 0x03, 0x04]);
  expectModelError(t, read(zipNoise), /^Malformed PyTorch checkpoint \(model\.pth\): no zip end-of-central-directory record/, 'random bytes after a zip signature');
  let others = 0;
  for (let i = 0; i < 200; i++) {
    const bytes = random(1 + (i % 64) * 7);
    if (i % 3 === 0) bytes[0] = 0x80;
    if (outcome(read(bytes)) !== 'E_MODEL') others++;
  }
  t.equal(others, 0, '200 random buffers: every one an E_MODEL FaceError');

  // Zip with a wrong central-directory offset.
  const { bytes: zip, eocd } = zipCheckpoint();
  const patched = (delta: number) => {
    const copy = zip.slice();
    const view = new DataView(copy.buffer);
    view.setUint32(eocd + 16, view.getUint32(eocd + 16, true) + delta, true);
    return copy;
  };
  expectModelError(t, read(patched(-1)), /central-directory entry 0 of 7 at offset \d+ is missing or damaged \(the central-directory offset or size is wrong\)/, 'central directory offset - 1');
  expectModelError(t, read(patched(1)), /the zip central directory \(\d+ bytes at offset \d+\) overlaps its end record at offset \d+/, 'central directory offset + 1');
  expectModelError(t, read(patched(-64)), /central-directory entry 0 of 7 .* missing or damaged/, 'central directory offset - 64');
  expectModelError(t, read(patched(1_000_000)), /the zip central directory \(\d+ bytes at offset \d+\) overlaps its end record/, 'central directory offset past the end');

  // A local-header offset that points elsewhere, and a corrupted stored record.
  const local = zip.slice();
  const cd = new DataView(local.buffer).getUint32(eocd + 16, true);
  new DataView(local.buffer).setUint32(cd + 42, 5, true);
  expectModelError(t, read(local), /the local header of 'archive\/data\.pkl' is not at offset 5/, 'bad local-header offset');
  const flipped = zip.slice();
  const at = Buffer.from(flipped).indexOf(Buffer.from(f32(A)));
  flipped[at + 5] ^= 0x40;
  expectModelError(t, read(flipped), /record 'archive\/data\/0' is corrupted \(CRC-32 0x[0-9a-f]{8}, the directory says 0x[0-9a-f]{8}\)/, 'CRC mismatch');

  // A deflated record whose compressed stream is damaged.
  const { bytes: deflated } = zipCheckpoint({ deflate: true });
  const pklBody = zlib.deflateRawSync(zipDataPkl());
  const start = Buffer.from(deflated).indexOf(pklBody.subarray(0, 16));
  t.ok(start > 0, 'the deflated data.pkl is in the archive');
  const damaged = deflated.slice();
  for (let i = 0; i < 8; i++) damaged[start + 10 + i] ^= 0xa5;
  expectModelError(t, read(damaged), /record 'archive\/data\.pkl' (does not inflate|inflates to|is corrupted)/, 'damaged deflate stream');

  // Unknown globals: inside the state dict, as the root object, as a storage type.
  const numpyScalar = (p: PickleWriter) => {
    p.str('x').global('numpy.core.multiarray', 'scalar').mark().none().float(0.5).tuple().reduce();
  };
  expectModelError(t, read(zipCheckpoint({ extra: numpyScalar }).bytes),
    /^Expected a tensor for state-dict entry 'x' in model\.pth but received an instance of numpy\.core\.multiarray\.scalar$/, 'unknown global in the state dict');
  const module = new PickleWriter().global('__main__', 'Net').emptyTuple().raw(0x81).emptyDict().raw(0x62).stop();
  expectModelError(t, read(zipCheckpoint({}, module).bytes), /but received an instance of __main__\.Net \(a pickled module or object; save model\.state_dict\(\) instead\)$/, 'a pickled module');
  const complex = new PickleWriter().orderedDict().mark().str('z');
  writeTensor(complex, { storage: 'ComplexFloatStorage', key: '0', numel: 3, offset: 0, size: [3], stride: [1] });
  expectModelError(t, read(zipCheckpoint({}, complex.setItems().stop()).bytes),
    /^Unsupported PyTorch checkpoint \(model\.pth\): storage type torch\.ComplexFloatStorage is not supported$/, 'unknown storage type');

  // A view that reaches past its storage; a storage whose record is too short.
  const outside = new PickleWriter().orderedDict().mark().str('a');
  writeTensor(outside, { storage: 'FloatStorage', key: '0', numel: 6, offset: 1, size: [2, 3], stride: [3, 1] });
  expectModelError(t, read(zipCheckpoint({}, outside.setItems().stop()).bytes),
    /tensor 'a' \(shape \[2, 3\], stride \[3, 1\], storage offset 1\) reaches element 6 of storage '0', which has 6 elements/, 'view past the storage');
  const short = new PickleWriter().orderedDict().mark().str('a');
  writeTensor(short, { storage: 'FloatStorage', key: '0', numel: 7, offset: 0, size: [7], stride: [1] });
  expectModelError(t, read(zipCheckpoint({}, short.setItems().stop()).bytes),
    /record 'archive\/data\/0' holds 24 bytes but storage '0' needs 28 \(7 × float32\)/, 'record shorter than its storage');
  const missing = new PickleWriter().orderedDict().mark().str('a');
  writeTensor(missing, { storage: 'FloatStorage', key: '9', numel: 1, offset: 0, size: [], stride: [] });
  expectModelError(t, read(zipCheckpoint({}, missing.setItems().stop()).bytes), /storage '9' has no record 'archive\/data\/9'/, 'missing storage record');

  // Pickle-level damage: a memo read of nothing, an unknown opcode, no STOP, an empty dict.
  expectModelError(t, read(zipCheckpoint({}, Uint8Array.from([0x80, 0x02, 0x68, 0x05, 0x2e])).bytes), /opcode BINGET at byte 2 of archive\/data\.pkl: memo entry 5 was never stored/, 'BINGET of nothing');
  expectModelError(t, read(zipCheckpoint({}, Uint8Array.from([0x80, 0x02, 0xff, 0x2e])).bytes), /pickle opcode 0xff is not supported/, 'unknown opcode');
  expectModelError(t, read(zipCheckpoint({}, Uint8Array.from([0x80, 0x02, 0x7d])).bytes), /archive\/data\.pkl is cut short: it ends at byte 3 without a STOP opcode/, 'no STOP');
  expectModelError(t, read(zipCheckpoint({}, Uint8Array.from([0x80, 0x02, 0x7d, 0x2e])).bytes), /but received a dict with no entries$/, 'empty dict');
  expectModelError(t, read(zipCheckpoint({}, Uint8Array.from([0x80, 0x02, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x2e])).bytes),
    /archive\/data\.pkl is cut short: opcode BINUNICODE at byte 2 needs 2147483647 more bytes but record archive\/data\.pkl ends at byte 8/, 'string longer than the pickle');

  // Not a torch.save archive.
  const torchscript = buildZip([
    { name: 'm/constants.pkl', data: Uint8Array.from([0x80, 0x02, 0x29, 0x2e]) },
    { name: 'm/code/__torch__.py', data: Buffer.from('x') },
  ]).bytes;
  expectModelError(t, read(torchscript), /^Unsupported PyTorch checkpoint \(model\.pth\): this is a TorchScript archive/, 'TorchScript archive');
});

t.test('zip format (PyTorch >= 1.6), STORED, protocol 2', async (t) => {
  const { bytes } = zipCheckpoint();
  const sd = readTorchCheckpoint(bytes, 'fixture.pt');
  t.same([...sd.keys()], ['a', 'at', 'col', 'row', 'n', 'h'], 'keys in file order');
  const a = sd.get('a')!;
  t.equal(a.key, 'a', 'key field');
  t.equal(a.dtype, 'float32');
  t.same(a.dims, [2, 3]);
  t.ok(a.data instanceof Float32Array, 'float32 data');
  t.same(values(a), A, 'a');
  t.same(sd.get('at')!.dims, [3, 2], 'transposed dims');
  t.same(values(sd.get('at')), [1.5, 4, -2, 5.5, 3.25, -6], 'transposed view (stride [1, 3]) copied out row-major');
  t.same(values(sd.get('col')), [-2, 5.5], 'column view (offset 1, stride [3])');
  t.same(values(sd.get('row')), [4, 5.5, -6], 'row view through _rebuild_parameter (offset 3)');
  const n = sd.get('n')!;
  t.equal(n.dtype, 'int64');
  t.same(n.dims, [], 'scalar dims');
  t.ok(n.data instanceof BigInt64Array && n.data.length === 1 && n.data[0] === N, 'int64 scalar value');
  const h = sd.get('h')!;
  t.equal(h.dtype, 'float16');
  t.same(values(h), H, 'float16 kept as raw bits');
  t.same(Array.from(toFloat32(h)), [1, -2, 0.5], 'toFloat32 decodes float16');
  t.same(Array.from(toFloat32(n)), [Math.fround(Number(N))], 'toFloat32 of int64');
  t.equal(toFloat32(a), a.data, 'toFloat32 of float32 returns the array itself');
  t.not(sd.get('a')!.data.buffer, sd.get('at')!.data.buffer, 'every tensor owns its data');

  // The same bytes inside a larger buffer (a view with a byte offset, as Node's pooled Buffers are).
  const host = new Uint8Array(bytes.length + 11);
  host.set(bytes, 3);
  t.same(values(readTorchCheckpoint(host.subarray(3, 3 + bytes.length)).get('at')), [1.5, 4, -2, 5.5, 3.25, -6], 'reads from a view at a byte offset');
});

t.test('zip format, DEFLATED, protocol 4 opcodes, nested checkpoint with module. prefix', async (t) => {
  const { bytes } = zipCheckpoint({ deflate: true, protocol4: true, nested: true });
  t.ok(Buffer.from(bytes).indexOf(Buffer.from(f32(A))) < 0, 'storages really are compressed');
  const sd = readTorchCheckpoint(bytes);
  t.same([...sd.keys()], ['a', 'at', 'col', 'row', 'n', 'h'], "state_dict found and 'module.' stripped");
  t.same(values(sd.get('a')), A, 'a');
  t.same(values(sd.get('at')), [1.5, 4, -2, 5.5, 3.25, -6], 'transposed view');
  t.same(values(sd.get('col')), [-2, 5.5], 'column view');
  t.equal((sd.get('n')!.data as BigInt64Array)[0], N, 'int64 scalar');
  const root = readTorchObject(bytes) as Map<string, unknown>;
  t.ok(root instanceof Map, 'readTorchObject: a Map');
  t.equal(root.get('epoch'), 7, 'epoch');
  const inner = root.get('state_dict') as Map<string, TorchTensor>;
  t.same(values(inner.get('module.col')), [-2, 5.5], 'readTorchObject: tensors materialised, keys as stored');
});

t.test('zip format, big-endian byteorder', async (t) => {
  const sd = readTorchCheckpoint(zipCheckpoint({ bigEndian: true }).bytes);
  t.same(values(sd.get('at')), [1.5, 4, -2, 5.5, 3.25, -6], 'float32 swapped');
  t.equal((sd.get('n')!.data as BigInt64Array)[0], N, 'int64 swapped');
  t.same(Array.from(toFloat32(sd.get('h')!)), [1, -2, 0.5], 'float16 swapped');
});

t.test('legacy format (hand-built)', async (t) => {
  const bytes = legacyCheckpoint();
  const sd = readTorchCheckpoint(bytes, 'legacy.pth');
  t.same([...sd.keys()], ['w', 'b', 'v', 't'], "keys with 'module.' stripped, other entries ignored");
  t.same(values(sd.get('w')), K1, 'w');
  t.same(sd.get('b')!.dims, [2]);
  t.same(values(sd.get('b')), [7n, -9n], 'int64 storage listed first in the key list');
  t.same(values(sd.get('v')), [2, 8], 'storage view (view metadata) at element 2');
  t.same(values(sd.get('t')), [0.25, 2, -1, 8], 'transposed');
  const root = readTorchObject(bytes) as Map<string, unknown>;
  t.equal(root.get('epoch'), 3);
  t.equal(root.get('arch'), 'x');
  const best = root.get('best');
  t.ok(best instanceof PickledObject, 'an unknown global outside the state dict is kept inert');
  t.equal((best as PickledObject).className, 'numpy.core.multiarray.scalar');
  const raw = (best as PickledObject).args[1] as Uint8Array;
  t.equal(Buffer.from(raw).readDoubleLE(0), 0.5, '_codecs.encode(..., latin1) becomes bytes');
});

t.test('truncated and corrupted files: always an E_MODEL FaceError', async (t) => {
  const files: Record<string, Uint8Array> = {
    legacy: legacyCheckpoint(),
    zip: zipCheckpoint().bytes,
    'zip deflated': zipCheckpoint({ deflate: true, protocol4: true, nested: true }).bytes,
  };
  for (const [name, bytes] of Object.entries(files)) {
    const bad: string[] = [];
    for (let cut = 0; cut < bytes.length; cut++) {
      const result = outcome(() => readTorchCheckpoint(bytes.subarray(0, cut), name));
      if (result !== 'E_MODEL') bad.push(`cut at ${cut}: ${result}`);
    }
    t.same(bad.slice(0, 5), [], `${name}: each of ${bytes.length} truncations throws E_MODEL`);
    const fuzz: string[] = [];
    let parsed = 0;
    for (let i = 0; i < bytes.length; i++) {
      for (const change of [0xff, 0x01, 0x80]) {
        const copy = bytes.slice();
        copy[i] ^= change;
        const result = outcome(() => {
          readTorchCheckpoint(copy, name);
          readTorchObject(copy, name);
        });
        if (result === 'ok') parsed++;
        else if (result !== 'E_MODEL') fuzz.push(`byte ${i} ^ ${change}: ${result}`);
      }
    }
    t.same(fuzz.slice(0, 5), [], `${name}: ${3 * bytes.length} single-byte corruptions read or throw E_MODEL (${parsed} read)`);
  }

  const legacy = files.legacy;
  const cut = (n: number) => () => readTorchCheckpoint(legacy.subarray(0, n), 'legacy.pth');
  expectModelError(t, cut(9), /^Malformed PyTorch checkpoint \(legacy\.pth\): the magic-number pickle is cut short: opcode LONG1 at byte 2 needs 10 more bytes but the file ends at byte 9$/, 'cut inside the magic number');
  expectModelError(t, cut(legacy.length - 1), /^Malformed PyTorch checkpoint \(legacy\.pth\): storage 'k1' needs 16 bytes at offset \d+ but the file ends at \d+$/, 'cut inside the last storage');
  expectModelError(t, cut(legacy.length - 16 - 4), /the element count of storage 'k1' needs 8 bytes at offset \d+ but the file ends at \d+/, 'cut inside a storage header');
});

// ---------------------------------------------------------------------------------------------
// The real files

interface Listed {
  name: string;
  dtype: string;
  dims: number[];
  numel: number;
  offset: number;
}

function parseListing(text: string): { tensors: Listed[]; other: Map<string, string>; summary: { count: number; total: number } } {
  const tensors: Listed[] = [];
  const other = new Map<string, string>();
  let summary = { count: -1, total: -1 };
  for (const line of text.split('\n')) {
    const m = /^# tensors listed: (\d+), total elements: (\d+)/.exec(line);
    if (m) summary = { count: Number(m[1]), total: Number(m[2]) };
    if (line.startsWith('#') || line.trim() === '') continue;
    const cols = line.split('\t');
    if (cols[1] === '<non-tensor>') {
      other.set(cols[0], cols[2]);
      continue;
    }
    if (cols.length !== 5) throw new Error(`unexpected listing line: ${line}`);
    tensors.push({ name: cols[0], dtype: cols[1], dims: JSON.parse(cols[2]) as number[], numel: Number(cols[3]), offset: Number(cols[4]) });
  }
  return { tensors, other, summary };
}

function readmeSha256(readme: string, file: string): string | undefined {
  const m = new RegExp('`' + file.replace(/[.]/g, '\\.') + '` \\| [\\d,]+ \\| `([0-9a-f]{64})`').exec(readme);
  return m?.[1];
}

/** Every listed element read straight from the file at the listed offset, against the reader's. */
function rawMismatches(file: Buffer, listed: Listed, tensor: TorchTensor): string | undefined {
  for (let i = 0; i < listed.numel; i++) {
    const expected = listed.dtype === 'int64' ? file.readBigInt64LE(listed.offset + 8 * i) : file.readFloatLE(listed.offset + 4 * i);
    if (!Object.is(tensor.data[i], expected)) return `${listed.name}[${i}]: ${String(tensor.data[i])} != ${String(expected)}`;
  }
  return undefined;
}

const REAL_FILES = [
  { file: 'retinaface_mnet025.pth', listing: 'retinaface_mnet025.keys.txt', readme: 'README.md', prefix: '', count: 300 },
  { file: 'mobilenetV1X0.25_pretrain.tar', listing: 'mobilenetV1X0.25_pretrain.keys.txt', readme: 'README.md', prefix: 'state_dict.module.', count: 164 },
  {
    file: 'embedding_candidate/mobilefacenet_casia_068.ckpt',
    listing: 'embedding_candidate/mobilefacenet_casia_068.keys.txt',
    readme: 'embedding_candidate/README.md',
    prefix: 'net_state_dict.',
    count: 333,
  },
];

for (const spec of REAL_FILES) {
  t.test(`weights/${spec.file} against its listing`, async (t) => {
    const full = dataPath(t, `weights/${spec.file}`);
    if (!full) return;
    const file = fs.readFileSync(full);
    const readme = fs.readFileSync(dataPath(t, `weights/${spec.readme}`)!, 'utf8');
    const listing = parseListing(fs.readFileSync(dataPath(t, `weights/${spec.listing}`)!, 'utf8'));
    const base = spec.file.split('/').pop()!;
    t.equal(crypto.createHash('sha256').update(file).digest('hex'), readmeSha256(readme, base), 'sha256 as in the README');
    t.equal(listing.tensors.length, listing.summary.count, 'listing: tensor count as its summary line says');

    const sd = readTorchCheckpoint(file, base);
    const expected = listing.tensors.filter((l) => l.name.startsWith(spec.prefix));
    t.equal(expected.length, spec.count, `listing: ${spec.count} state-dict tensors`);
    t.same([...sd.keys()], expected.map((l) => l.name.slice(spec.prefix.length)), 'every key, in the listing order');
    const wrong: string[] = [];
    let total = 0;
    for (const l of expected) {
      const tensor = sd.get(l.name.slice(spec.prefix.length));
      if (!tensor) continue;
      const numel = tensor.dims.reduce((a, b) => a * b, 1);
      total += tensor.data.length;
      if (tensor.dtype !== l.dtype) wrong.push(`${l.name}: dtype ${tensor.dtype} != ${l.dtype}`);
      if (JSON.stringify(tensor.dims) !== JSON.stringify(l.dims)) wrong.push(`${l.name}: dims [${tensor.dims}] != [${l.dims}]`);
      if (tensor.data.length !== l.numel || numel !== l.numel) wrong.push(`${l.name}: numel ${tensor.data.length} != ${l.numel}`);
    }
    t.same(wrong, [], 'every dtype, shape and numel as listed');
    t.equal(total, expected.reduce((n, l) => n + l.numel, 0), `${total} elements`);

    // Independent check of the storage-order logic: the listing's byte offsets read directly.
    const mismatches = expected.map((l) => rawMismatches(file, l, sd.get(l.name.slice(spec.prefix.length))!)).filter((m) => m);
    t.same(mismatches, [], 'every element equals the raw little-endian bytes at the listed offset');
    const first = expected[0];
    t.equal(sd.get(first.name.slice(spec.prefix.length))!.data[0], file.readFloatLE(first.offset), `spot value ${first.name}[0]`);

    // The whole object: entries outside the state dict.
    const root = readTorchObject(file, base);
    t.ok(root instanceof Map, 'readTorchObject: a Map');
    for (const [name, text] of listing.other) {
      if (name.includes('.')) continue; // optimizer.param_groups: checked below
      const value = (root as Map<string, unknown>).get(name);
      t.equal(typeof value === 'string' ? `'${value}'` : String(value), text, `non-tensor entry ${name}`);
    }
    for (const l of listing.tensors.filter((x) => !x.name.includes('.'))) {
      const tensor = (root as Map<string, unknown>).get(l.name) as TorchTensor;
      t.equal(tensor?.dtype, l.dtype, `top-level tensor ${l.name}: dtype`);
      t.same(tensor?.dims, l.dims, `top-level tensor ${l.name}: dims`);
      t.equal(tensor?.data[0], file.readFloatLE(l.offset), `top-level tensor ${l.name}: value`);
    }
    if (listing.other.has('optimizer.param_groups')) {
      const groups = ((root as Map<string, unknown>).get('optimizer') as Map<string, unknown>).get('param_groups') as Map<string, unknown>[];
      t.equal(groups[0].get('momentum'), 0.9, 'optimizer param_groups[0].momentum');
      t.equal(groups[0].get('lr'), 0.0010000000000000002, 'optimizer param_groups[0].lr');
    }

    // Truncations: inside the first pickle, inside the object pickle, in the key list, in a
    // storage header, in storage data, the last byte.
    const dataStart = Math.min(...listing.tensors.map((l) => l.offset)) - 8;
    const label = base.replace(/[.]/g, '\\.');
    const cuts: [number, RegExp][] = [
      [10, /the magic-number pickle is cut short/],
      [5000, /the object pickle is cut short: opcode \w+ at byte \d+ needs (\d+ more bytes|an end of line) but the file ends at byte 5000$/],
      [dataStart - 3, /the storage-key pickle is cut short/],
      [dataStart + 4, /the element count of storage '\w+' needs 8 bytes at offset \d+ but the file ends at \d+/],
      [dataStart + 1000, /storage '\w+' needs \d+ bytes at offset \d+ but the file ends at \d+/],
      [file.length - 1, /storage '\w+' needs \d+ bytes at offset \d+ but the file ends at \d+$/],
    ];
    for (const [at, message] of cuts) {
      expectModelError(t, () => readTorchCheckpoint(file.subarray(0, at), base), new RegExp(`^Malformed PyTorch checkpoint \\(${label}\\): (${message.source})`), `cut at ${at}`);
    }
  });
}

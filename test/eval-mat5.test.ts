// The MATLAB v5 reader: hand-built files (a tiny writer below) plain, compressed and big-endian;
// truncated and corrupt bytes always give E_INPUT naming the file and offset; the WIDER FACE files.
import t from 'tap';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { FaceError } from '../lib/errors';
import { readMat5, readMat5File, type MatCell, type MatNumeric } from '../lib/eval/mat5';
import { SeededRandom } from '../lib/onnx/random';
import { dataPath } from './helpers/data';

// --- a minimal v5 writer -------------------------------------------------------------------------
const MI = { INT8: 1, UINT8: 2, INT16: 3, UINT16: 4, INT32: 5, UINT32: 6, SINGLE: 7, DOUBLE: 9, INT64: 12, MATRIX: 14, COMPRESSED: 15, UTF8: 16 };
const MX = { CELL: 1, STRUCT: 2, CHAR: 4, DOUBLE: 6, SINGLE: 7, INT8: 8, UINT8: 9, INT16: 10, UINT16: 11, INT32: 12, UINT32: 13, INT64: 14 };

class Writer {
  constructor(readonly little = true) {}

  u32(v: number): Buffer {
    const b = Buffer.alloc(4);
    if (this.little) b.writeUInt32LE(v);
    else b.writeUInt32BE(v);
    return b;
  }

  /** A regular element, padded to 8 bytes. */
  element(type: number, data: Buffer): Buffer {
    const pad = (8 - (data.length % 8)) % 8;
    return Buffer.concat([this.u32(type), this.u32(data.length), data, Buffer.alloc(pad)]);
  }

  /** The small format: type and size in one word, up to 4 data bytes. */
  small(type: number, data: Buffer): Buffer {
    return Buffer.concat([this.u32((data.length << 16) | type), data, Buffer.alloc(4 - data.length)]);
  }

  numbers(type: number, values: number[]): Buffer {
    const size = { [MI.INT8]: 1, [MI.UINT8]: 1, [MI.INT16]: 2, [MI.UINT16]: 2, [MI.INT32]: 4, [MI.UINT32]: 4, [MI.SINGLE]: 4, [MI.DOUBLE]: 8, [MI.INT64]: 8 }[type] as number;
    const b = Buffer.alloc(values.length * size);
    values.forEach((v, i) => {
      const o = i * size;
      const L = this.little;
      switch (type) {
        case MI.INT8: b.writeInt8(v, o); break;
        case MI.UINT8: b.writeUInt8(v, o); break;
        case MI.INT16: L ? b.writeInt16LE(v, o) : b.writeInt16BE(v, o); break;
        case MI.UINT16: L ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o); break;
        case MI.INT32: L ? b.writeInt32LE(v, o) : b.writeInt32BE(v, o); break;
        case MI.UINT32: L ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o); break;
        case MI.SINGLE: L ? b.writeFloatLE(v, o) : b.writeFloatBE(v, o); break;
        case MI.DOUBLE: L ? b.writeDoubleLE(v, o) : b.writeDoubleBE(v, o); break;
        case MI.INT64: L ? b.writeBigInt64LE(BigInt(v), o) : b.writeBigInt64BE(BigInt(v), o); break;
      }
    });
    return b;
  }

  matrix(cls: number, dims: number[], name: string, parts: Buffer[], flagBits = 0): Buffer {
    const flags = this.element(MI.UINT32, Buffer.concat([this.u32(cls | (flagBits << 8)), this.u32(0)]));
    const dimsElement = this.element(MI.INT32, this.numbers(MI.INT32, dims));
    const nameElement = this.element(MI.INT8, Buffer.from(name, 'latin1'));
    return this.element(MI.MATRIX, Buffer.concat([flags, dimsElement, nameElement, ...parts]));
  }

  /** A numeric array stored as `type`, small format when it fits. */
  numeric(cls: number, dims: number[], values: number[], name = '', type = MI.DOUBLE, flagBits = 0, imag?: number[]): Buffer {
    const data = (v: number[]) => {
      const bytes = this.numbers(type, v);
      return bytes.length <= 4 && bytes.length > 0 ? this.small(type, bytes) : this.element(type, bytes);
    };
    return this.matrix(cls, dims, name, imag ? [data(values), data(imag)] : [data(values)], flagBits);
  }

  chars(text: string, name = '', encoding: 'utf16' | 'utf8' = 'utf16', dims = [1, [...text].length]): Buffer {
    const data = encoding === 'utf8'
      ? this.element(MI.UTF8, Buffer.from(text, 'utf8'))
      : this.element(MI.UINT16, this.numbers(MI.UINT16, Array.from(text, (c) => c.charCodeAt(0))));
    return this.matrix(MX.CHAR, dims, name, [data]);
  }

  cell(dims: number[], cells: Buffer[], name = ''): Buffer {
    return this.matrix(MX.CELL, dims, name, cells);
  }

  file(variables: Buffer[], compress = false): Buffer {
    const header = Buffer.alloc(128, 0x20);
    header.write('MATLAB 5.0 MAT-file, written by the facesight tests', 0, 'latin1');
    header.fill(0, 116, 124);
    const version = Buffer.alloc(2);
    if (this.little) version.writeUInt16LE(0x0100);
    else version.writeUInt16BE(0x0100);
    version.copy(header, 124);
    header.write(this.little ? 'IM' : 'MI', 126, 'latin1');
    const body = variables.map((v) => {
      if (!compress) return v;
      const z = zlib.deflateSync(v);
      return Buffer.concat([this.u32(MI.COMPRESSED), this.u32(z.length), z]); // compressed: no padding
    });
    return Buffer.concat([header, ...body]);
  }
}

/** The sample file: a cell of a 2×3 double matrix, a char array and an empty cell; and a string. */
function sample(w: Writer, compress: boolean): Buffer {
  return w.file([
    w.cell([3, 1], [w.numeric(MX.DOUBLE, [2, 3], [1, 2, 3, 4, 5, 6.5]), w.chars('0--Parade'), w.matrix(MX.CELL, [0, 0], '', [])], 'list'),
    w.chars('Zoë', 'who', 'utf8'),
  ], compress);
}

function expectMatError(t: Tap.Test, bytes: Uint8Array, message: RegExp, what: string): void {
  try {
    readMat5(bytes, 'test.mat');
    t.fail(`${what}: expected an error`);
  } catch (error) {
    t.ok(error instanceof FaceError, `${what}: a FaceError`);
    t.equal((error as FaceError).code, 'E_INPUT', `${what}: E_INPUT`);
    t.match((error as Error).message, /^test\.mat: .*byte offset \d+/, `${what}: names the file and offset`);
    t.match((error as Error).message, message, `${what}: says what is wrong`);
  }
}

t.test('invalid input', async (t) => {
  const w = new Writer();
  const good = sample(w, false);
  expectMatError(t, good.subarray(0, 100), /the 128-byte header is truncated \(100 bytes\)/, 'short header');
  const notMat = Buffer.from(good);
  notMat.write('Hello', 0, 'latin1');
  expectMatError(t, notMat, /not a MATLAB v5 file/, 'wrong header text');
  const v73 = Buffer.from(good);
  v73.write('MATLAB 7.3 MAT-file', 0, 'latin1');
  expectMatError(t, v73, /v7.3 \(HDF5\) files are not supported/, 'v7.3');
  const badEndian = Buffer.from(good);
  badEndian.write('XX', 126, 'latin1');
  expectMatError(t, badEndian, /unknown byte-order mark "XX" at byte offset 126/, 'byte-order mark');

  // The first variable's tag says more bytes than the file holds.
  expectMatError(t, good.subarray(0, 200), /truncated data element \(type 14, \d+ bytes of data, 64 left\) at byte offset 128$/, 'truncated variable');
  const zGood = sample(w, true);
  const zTruncated = zGood.subarray(0, zGood.length - 5);
  const zFirst = zGood.readUInt32LE(132) + 136; // the second variable starts after the first
  expectMatError(t, zTruncated, new RegExp(`truncated data element \\(type 15, .*\\) at byte offset ${zFirst}$`), 'truncated compressed variable');
  const zCorrupt = Buffer.from(zGood);
  zCorrupt.fill(0xff, 136, 150);
  expectMatError(t, zCorrupt, /corrupt compressed element \(.*\) at byte offset 128$/, 'corrupt zlib data');
  // Within compressed data, the offset is relative to the inflated bytes, and says so.
  const inner = w.cell([2, 1], [w.numeric(MX.DOUBLE, [1, 1], [1])], 'c'); // one cell short
  expectMatError(t, w.file([inner], true), /truncated data element tag \(0 of 8 bytes\) at byte offset \d+ of the data inflated from the compressed element at byte offset 128/, 'missing cell');

  expectMatError(t, w.file([w.matrix(MX.STRUCT, [1, 1], 's', [])]), /struct arrays are not supported/, 'a struct');
  expectMatError(t, w.file([w.numeric(MX.DOUBLE, [2, 2], [1, 2, 3], 'x')]), /real part holds 3 numbers, dimensions say 4/, 'dims vs data');
  expectMatError(t, w.file([w.numeric(MX.DOUBLE, [-1, 2], [1, 2], 'x')]), /negative dimension -1/, 'negative dimension');
  expectMatError(t, w.file([w.chars('abc', 'x', 'utf16', [1, 4])]), /char data holds 3 characters, dimensions say 4/, 'char count');
  const bigSmall = w.file([w.numeric(MX.UINT8, [1, 2], [1, 2], 'x', MI.UINT8)]);
  // Patch the small element's byte count (upper half of its first word) to 9.
  const smallAt = bigSmall.indexOf(Buffer.from([MI.UINT8, 0, 2, 0, 1, 2]), 128);
  bigSmall.writeUInt16LE(9, smallAt + 2);
  expectMatError(t, bigSmall, /small data element claims 9 bytes/, 'small element too large');
  expectMatError(t, w.file([w.element(MI.DOUBLE, Buffer.alloc(8))]), /top-level element of data type 9/, 'a non-matrix variable');

  // Every truncation and many random corruptions: a FaceError E_INPUT or a (shorter) result, never
  // another exception.
  for (const bytes of [good, zGood, sample(new Writer(false), false)]) {
    let errors = 0;
    let other = 0;
    for (let n = 0; n < bytes.length; n++) {
      try {
        readMat5(bytes.subarray(0, n), 'cut.mat');
      } catch (error) {
        if (error instanceof FaceError && error.code === 'E_INPUT' && /^cut\.mat: /.test(error.message)) errors++;
        else other++;
      }
    }
    t.equal(other, 0, `every truncation of a ${bytes.length}-byte file gives E_INPUT or parses`);
    t.ok(errors > bytes.length - 20, `${errors} truncations rejected`);
    const rng = new SeededRandom(bytes.length);
    other = 0;
    for (let k = 0; k < 400; k++) {
      const corrupt = Buffer.from(bytes);
      for (let j = 0; j < 3; j++) corrupt[128 + Math.floor(rng.next() * (bytes.length - 128))] = Math.floor(rng.next() * 256);
      try {
        readMat5(corrupt, 'bad.mat');
      } catch (error) {
        if (!(error instanceof FaceError && error.code === 'E_INPUT')) other++;
      }
    }
    t.equal(other, 0, 'random corruptions give E_INPUT or parse');
  }
  t.throws(() => readMat5File(path.join(os.tmpdir(), 'facesight-no-such.mat')), { code: 'E_INPUT', message: /Cannot read .*facesight-no-such\.mat/ });
});

t.test('hand-built files', async (t) => {
  for (const [little, compress] of [[true, false], [true, true], [false, false], [false, true]]) {
    const what = `${little ? 'little' : 'big'}-endian${compress ? ', compressed' : ''}`;
    const mat = readMat5(sample(new Writer(little), compress), 'sample.mat');
    t.match(mat.header, /^MATLAB 5\.0 MAT-file, written by the facesight tests$/, `${what}: header`);
    t.same([...mat.variables.keys()], ['list', 'who'], `${what}: names in order`);
    const list = mat.variables.get('list') as MatCell;
    t.equal(list.kind, 'cell');
    t.same(list.dims, [3, 1]);
    const m = list.cells[0] as MatNumeric;
    t.same([m.kind, m.class, m.dims, Array.from(m.data)], ['numeric', 'double', [2, 3], [1, 2, 3, 4, 5, 6.5]], `${what}: column-major doubles`);
    t.equal(list.cells[1], '0--Parade', `${what}: a UTF-16 char array`);
    t.same(list.cells[2], { kind: 'cell', dims: [0, 0], cells: [] }, `${what}: an empty cell`);
    t.equal(mat.variables.get('who'), 'Zoë', `${what}: a UTF-8 char array`);
  }

  const w = new Writer();
  const mat = readMat5(w.file([
    w.numeric(MX.UINT8, [2, 1], [7, 255], 'u8', MI.UINT8), // small element format
    w.numeric(MX.DOUBLE, [1, 3], [1, 300, 65535], 'dAsU16', MI.UINT16), // doubles stored as uint16 (as MATLAB does)
    w.numeric(MX.INT8, [1, 2], [-128, 127], 'i8', MI.INT8),
    w.numeric(MX.INT16, [1, 3], [-2, 0, 3], 'i16', MI.INT16),
    w.numeric(MX.INT32, [1, 1], [-123456], 'i32', MI.INT32),
    w.numeric(MX.UINT32, [1, 2], [4000000000, 1], 'u32', MI.UINT32),
    w.numeric(MX.SINGLE, [1, 2], [0.5, -1.25], 'f32', MI.SINGLE),
    w.numeric(MX.INT64, [1, 1], [-9007199254740991], 'i64', MI.INT64),
    w.numeric(MX.UINT8, [1, 3], [1, 0, 1], 'bool', MI.UINT8, 0x02),
    w.numeric(MX.DOUBLE, [1, 2], [1, 2], 'z', MI.DOUBLE, 0x08, [3, -4]),
    w.chars('adbecf', 'rows', 'utf16', [2, 3]),
    w.chars('', 'empty', 'utf16', [0, 0]),
    w.matrix(MX.DOUBLE, [0, 1], 'none', [w.element(MI.UINT8, Buffer.alloc(0))]),
    w.cell([1, 2], [w.cell([1, 1], [w.chars('deep')]), w.numeric(MX.DOUBLE, [1, 1], [42])], 'nested'),
  ]), 'types.mat');
  const num = (name: string) => mat.variables.get(name) as MatNumeric;
  t.same([num('u8').class, num('u8').dims, Array.from(num('u8').data)], ['uint8', [2, 1], [7, 255]], 'uint8 in the small format');
  t.same([num('dAsU16').class, Array.from(num('dAsU16').data)], ['double', [1, 300, 65535]], 'double class stored as uint16');
  t.same(Array.from(num('i8').data), [-128, 127]);
  t.same(Array.from(num('i16').data), [-2, 0, 3]);
  t.same(Array.from(num('i32').data), [-123456]);
  t.same(Array.from(num('u32').data), [4000000000, 1]);
  t.same([num('f32').class, Array.from(num('f32').data)], ['single', [0.5, -1.25]]);
  t.same(Array.from(num('i64').data), [-9007199254740991]);
  t.equal(num('bool').logical, true, 'logical flag');
  t.same([Array.from(num('z').data), Array.from(num('z').imag ?? [])], [[1, 2], [3, -4]], 'complex parts');
  t.equal(mat.variables.get('rows'), 'abc\ndef', 'a 2×3 char matrix (column-major) as rows');
  t.equal(mat.variables.get('empty'), '');
  t.same([num('none').dims, num('none').data.length], [[0, 1], 0], 'an empty 0×1 array');
  const nested = mat.variables.get('nested') as MatCell;
  t.same(nested.cells, [{ kind: 'cell', dims: [1, 1], cells: ['deep'] }, { kind: 'numeric', class: 'double', dims: [1, 1], data: new Float64Array([42]) }], 'nested cells');
});

t.test('WIDER FACE ground truth (shared data)', async (t) => {
  const file = dataPath(t, 'widerface/ground_truth/wider_hard_val.mat');
  if (!file) return;
  const mat = readMat5File(file);
  t.match(mat.header, /^MATLAB 5\.0 MAT-file, Platform: GLNXA64/);
  t.same([...mat.variables.keys()].sort(), ['blur_label_list', 'event_list', 'expression_label_list', 'face_bbx_list', 'file_list', 'gt_list', 'illumination_label_list', 'invalid_label_list', 'occlusion_label_list', 'pose_label_list']);
  const events = mat.variables.get('event_list') as MatCell;
  t.same(events.dims, [61, 1]);
  t.equal(events.cells[0], '0--Parade');
  const files = (mat.variables.get('file_list') as MatCell).cells[0] as MatCell;
  t.equal(files.cells[0], '0_Parade_marchingband_1_465');
  const boxes = ((mat.variables.get('face_bbx_list') as MatCell).cells[0] as MatCell).cells[0] as MatNumeric;
  t.same([boxes.class, boxes.dims[1]], ['int32', 4]);
  t.same(Array.from(boxes.data.filter((_, i) => i % boxes.dims[0] === 0)), [345, 211, 4, 4], 'the first box, x y w h (column-major)');
});

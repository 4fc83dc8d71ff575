/**
 * NumPy `.npy` files: the seed keeps its face database as two of them (embeddings and names).
 *
 * Read: format versions 1.0, 2.0 and 3.0; dtypes float32 / float64 ('<f4', '<f8', and big-endian
 * '>f4', '>f8', byte-swapped) and unicode strings ('<U{n}' / '>U{n}': UTF-32, NUL-padded, as
 * `np.save(list_of_str)` writes them); C order, or Fortran order for 1-D arrays (the same bytes); 1-D or
 * 2-D shapes. Object arrays ('|O') are refused: NumPy stores them as pickles, and unpickling runs code.
 * The header is a Python dict literal; it is parsed by the small parser below, never evaluated.
 * Every length is checked against the file: the data must be exactly product(shape) × itemsize bytes.
 *
 * Write: format 1.0 (2.0 only when the header would not fit), little-endian, C order, the header
 * padded so that the data starts at a multiple of 64 bytes (as NumPy does).
 *
 * Every problem with a file's contents is a FaceError E_DATABASE whose message names the file.
 */
import * as fs from 'node:fs';
import { FaceError, FaceRangeError, describeValue, invalidType } from '../errors';

export type NpyArray =
  | { readonly dtype: 'float32'; readonly shape: readonly number[]; readonly data: Float32Array }
  | { readonly dtype: 'float64'; readonly shape: readonly number[]; readonly data: Float64Array }
  /** Unicode strings; `data` has the trailing NULs removed (NumPy does the same). */
  | { readonly dtype: 'unicode'; readonly shape: readonly number[]; readonly data: string[] };

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ALIGN = 64;

function damaged(what: string, problem: string): FaceError {
  return new FaceError('E_DATABASE', `${what} is not a valid .npy file: ${problem}`);
}

// ---------------------------------------------------------------------------------------------------
// The header: a Python dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (3, 128), }

type PyValue = string | boolean | null | number | { tuple: PyValue[] } | { list: PyValue[] } | { dict: Map<string, PyValue> };

class HeaderParser {
  #pos = 0;
  constructor(readonly text: string, readonly what: string) {}

  parse(): Map<string, PyValue> {
    const value = this.#value(0);
    this.#space();
    if (this.#pos !== this.text.length) throw this.#error('unexpected text after the dict');
    if (typeof value !== 'object' || value === null || !('dict' in value)) throw damaged(this.what, 'the header is not a dict');
    return value.dict;
  }

  #error(problem: string): FaceError {
    return damaged(this.what, `malformed header (${problem} at character ${this.#pos}): ${JSON.stringify(this.text.slice(0, 200))}`);
  }

  #space(): void {
    while (this.#pos < this.text.length && ' \t\r\n'.includes(this.text[this.#pos])) this.#pos++;
  }

  #eat(char: string): boolean {
    this.#space();
    if (this.text[this.#pos] === char) {
      this.#pos++;
      return true;
    }
    return false;
  }

  #value(depth: number): PyValue {
    if (depth > 8) throw this.#error('nested too deeply');
    this.#space();
    const c = this.text[this.#pos];
    if (c === undefined) throw this.#error('unexpected end');
    if (c === "'" || c === '"') return this.#string();
    if (c === '{') return { dict: this.#dict(depth) };
    if (c === '(') return { tuple: this.#sequence(')', depth) };
    if (c === '[') return { list: this.#sequence(']', depth) };
    const word = /^(True|False|None)\b/.exec(this.text.slice(this.#pos, this.#pos + 6));
    if (word) {
      this.#pos += word[1].length;
      return word[1] === 'None' ? null : word[1] === 'True';
    }
    // Integers; Python 2 wrote longs with an L suffix ((3L, 128L)).
    const int = /^[+-]?\d{1,20}L?/.exec(this.text.slice(this.#pos, this.#pos + 22));
    if (int) {
      this.#pos += int[0].length;
      const digits = int[0].replace(/L$/, '');
      const n = Number(digits);
      if (!Number.isSafeInteger(n)) throw this.#error(`integer ${digits} out of range`);
      return n;
    }
    throw this.#error(`unexpected ${JSON.stringify(c)}`);
  }

  #string(): string {
    const quote = this.text[this.#pos++];
    let out = '';
    while (this.#pos < this.text.length) {
      const c = this.text[this.#pos++];
      if (c === quote) return out;
      if (c === '\\') {
        const next = this.text[this.#pos++];
        if (next === undefined) break;
        out += next === 'n' ? '\n' : next === 't' ? '\t' : next;
      } else {
        out += c;
      }
    }
    throw this.#error('unterminated string');
  }

  #sequence(close: string, depth: number): PyValue[] {
    this.#pos++;
    const items: PyValue[] = [];
    for (;;) {
      if (this.#eat(close)) return items;
      items.push(this.#value(depth + 1));
      if (this.#eat(close)) return items;
      if (!this.#eat(',')) throw this.#error(`expected ',' or '${close}'`);
    }
  }

  #dict(depth: number): Map<string, PyValue> {
    this.#pos++;
    const map = new Map<string, PyValue>();
    for (;;) {
      if (this.#eat('}')) return map;
      const key = this.#value(depth + 1);
      if (typeof key !== 'string') throw this.#error('a dict key that is not a string');
      if (!this.#eat(':')) throw this.#error("expected ':'");
      if (map.has(key)) throw this.#error(`key '${key}' repeated`);
      map.set(key, this.#value(depth + 1));
      if (this.#eat('}')) return map;
      if (!this.#eat(',')) throw this.#error("expected ',' or '}'");
    }
  }
}

interface Dtype {
  kind: 'float32' | 'float64' | 'unicode';
  littleEndian: boolean;
  /** Bytes per element. */
  itemsize: number;
}

function parseDescr(descr: PyValue, what: string): Dtype {
  if (typeof descr !== 'string') {
    throw damaged(what, `unsupported dtype ${describePy(descr)} (structured arrays are not read); expected float32, float64 or unicode strings`);
  }
  if (/^[|<>=]?O\d*$/.test(descr)) {
    throw new FaceError(
      'E_DATABASE',
      `${what} holds a pickled object array (dtype '${descr}'); pickled arrays are not read, because unpickling a file can run arbitrary code. ` +
        'Save the names as strings (np.array(names, dtype=str)) and the embeddings as float32.',
    );
  }
  const m = /^([<>=|])(f4|f8|U(\d{1,9}))$/.exec(descr);
  if (!m || (m[1] === '|' && m[2].startsWith('f'))) {
    throw damaged(what, `unsupported dtype '${descr}'; expected float32 ('<f4'), float64 ('<f8') or unicode strings ('<U…')`);
  }
  // '=' is the writer's native order; NumPy always writes '<' or '>', and every platform Node runs on is little-endian.
  const littleEndian = m[1] !== '>';
  if (m[2] === 'f4') return { kind: 'float32', littleEndian, itemsize: 4 };
  if (m[2] === 'f8') return { kind: 'float64', littleEndian, itemsize: 8 };
  const chars = Number(m[3]);
  if (chars < 1) throw damaged(what, `unsupported dtype '${descr}' (strings of length 0)`);
  return { kind: 'unicode', littleEndian, itemsize: 4 * chars };
}

function describePy(value: PyValue): string {
  if (value === null) return 'None';
  if (typeof value === 'object') return 'tuple' in value ? 'a tuple' : 'list' in value ? 'a list' : 'a dict';
  return typeof value === 'string' ? `'${value}'` : String(value);
}

const hostLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverses the bytes of each `size`-byte element in place. */
function swapBytes(bytes: Uint8Array, size: number): void {
  for (let k = 0; k + size <= bytes.length; k += size) {
    for (let a = k, b = k + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

/**
 * Parses the bytes of a .npy file. `what` names the file in messages (its path).
 *
 * @throws FaceError E_DATABASE for anything that is not a supported, intact .npy file
 */
export function decodeNpy(bytes: Uint8Array, what = 'the .npy data'): NpyArray {
  if (!(bytes instanceof Uint8Array)) throw invalidType('a Uint8Array', 'bytes', bytes);
  if (bytes.length < 10 || MAGIC.some((b, k) => bytes[k] !== b)) {
    throw damaged(what, bytes.length === 0 ? 'the file is empty' : 'it does not start with the .npy magic \\x93NUMPY');
  }
  const major = bytes[6];
  const minor = bytes[7];
  if (major < 1 || major > 3 || minor !== 0) throw damaged(what, `unsupported format version ${major}.${minor} (1.0, 2.0 and 3.0 are read)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerStart: number;
  let headerLength: number;
  if (major === 1) {
    headerStart = 10;
    headerLength = view.getUint16(8, true);
  } else {
    if (bytes.length < 12) throw new FaceError('E_DATABASE', `${what} is truncated: the file ends inside the header length`);
    headerStart = 12;
    headerLength = view.getUint32(8, true);
  }
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) {
    throw new FaceError('E_DATABASE', `${what} is truncated: the header says ${headerLength} bytes but the file ends after ${bytes.length - headerStart}`);
  }
  const headerBytes = bytes.subarray(headerStart, dataStart);
  let header: string;
  try {
    // Versions 1 and 2 are latin1 (every byte a character); version 3 is UTF-8.
    header = major === 3 ? new TextDecoder('utf-8', { fatal: true }).decode(headerBytes) : Buffer.from(headerBytes).toString('latin1');
  } catch {
    throw damaged(what, 'the header is not valid UTF-8');
  }
  const dict = new HeaderParser(header, what).parse();
  for (const key of ['descr', 'fortran_order', 'shape']) {
    if (!dict.has(key)) throw damaged(what, `the header has no '${key}'`);
  }
  for (const key of dict.keys()) {
    if (!['descr', 'fortran_order', 'shape'].includes(key)) throw damaged(what, `the header has an unexpected key '${key}'`);
  }
  const dtype = parseDescr(dict.get('descr')!, what);
  const fortran = dict.get('fortran_order');
  if (typeof fortran !== 'boolean') throw damaged(what, `fortran_order is ${describePy(fortran!)}, not True or False`);
  const shapeValue = dict.get('shape')!;
  if (typeof shapeValue !== 'object' || shapeValue === null || !('tuple' in shapeValue)) throw damaged(what, `the shape is ${describePy(shapeValue)}, not a tuple`);
  const shape = shapeValue.tuple.map((d) => {
    if (typeof d !== 'number' || d < 0) throw damaged(what, `the shape has a dimension ${describePy(d)}`);
    return d;
  });
  if (shape.length < 1 || shape.length > 2) throw damaged(what, `a ${shape.length}-D array (shape (${shape.join(', ')})); 1-D and 2-D arrays are read`);
  if (fortran && shape.length > 1) {
    throw damaged(what, `a 2-D array in Fortran order (fortran_order True); save it in C order (np.ascontiguousarray) instead`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  const expected = count * dtype.itemsize;
  if (!Number.isSafeInteger(expected)) throw damaged(what, `the shape (${shape.join(', ')}) is too large`);
  const found = bytes.length - dataStart;
  if (found < expected) throw new FaceError('E_DATABASE', `${what} is truncated: expected ${expected} bytes of data but found ${found}`);
  if (found > expected) throw damaged(what, `expected ${expected} bytes of data but found ${found} (trailing bytes)`);

  const data = bytes.subarray(dataStart);
  if (dtype.kind === 'unicode') {
    const chars = dtype.itemsize / 4;
    const strings = new Array<string>(count);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const points: number[] = [];
    for (let k = 0; k < count; k++) {
      points.length = 0;
      for (let c = 0; c < chars; c++) {
        const p = dv.getUint32((k * chars + c) * 4, dtype.littleEndian);
        if (p > 0x10ffff || (p >= 0xd800 && p <= 0xdfff)) throw damaged(what, `string ${k} holds an invalid code point 0x${p.toString(16)}`);
        points.push(p);
      }
      while (points.length > 0 && points[points.length - 1] === 0) points.pop();
      let s = '';
      for (let c = 0; c < points.length; c += 4096) s += String.fromCodePoint(...points.slice(c, c + 4096));
      strings[k] = s;
    }
    return { dtype: 'unicode', shape, data: strings };
  }
  // Copy into a fresh, aligned buffer (the file's bytes may sit at any offset), swapping when needed.
  const copy = new Uint8Array(expected);
  copy.set(data);
  if (dtype.littleEndian !== hostLittleEndian) {
    swapBytes(copy, dtype.itemsize);
  }
  if (dtype.kind === 'float32') return { dtype: 'float32', shape, data: new Float32Array(copy.buffer, 0, count) };
  return { dtype: 'float64', shape, data: new Float64Array(copy.buffer, 0, count) };
}

function checkShape(shape: unknown, length: number): number[] {
  if (!Array.isArray(shape)) throw invalidType('an array of dimensions', 'array.shape', shape);
  if (shape.length < 1 || shape.length > 2 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new FaceRangeError(`Expected 1 or 2 non-negative integer dimensions for array.shape but received ${describeValue(shape)} [${shape.join(', ')}]`);
  }
  const count = (shape as number[]).reduce((a, b) => a * b, 1);
  if (count !== length) throw new FaceRangeError(`Expected ${count} values for an array of shape (${shape.join(', ')}) but received ${length}`);
  return shape as number[];
}

/** A '<U{n}' array's bytes: UTF-32LE code points, each string NUL-padded to n. */
function encodeStrings(strings: readonly string[]): { descr: string; body: Uint8Array } {
  const points = strings.map((s, k) => {
    if (typeof s !== 'string') throw invalidType('a string', `array.data[${k}]`, s);
    // NumPy strips trailing NULs on reading, so a string with a NUL would not come back as written.
    if (s.includes('\0')) throw new FaceRangeError(`Expected a string without NUL characters for array.data[${k}] but received ${describeValue(s)}`);
    return Array.from(s, (c) => c.codePointAt(0)!);
  });
  const chars = Math.max(1, ...points.map((p) => p.length));
  const body = new Uint8Array(strings.length * chars * 4);
  const dv = new DataView(body.buffer);
  points.forEach((p, k) => p.forEach((code, c) => dv.setUint32((k * chars + c) * 4, code, true)));
  return { descr: `<U${chars}`, body };
}

/** The bytes of a .npy file (format 1.0, little-endian, C order) for a 1-D or 2-D array. */
export function encodeNpy(array: NpyArray): Uint8Array {
  if (typeof array !== 'object' || array === null) throw invalidType('an array { dtype, shape, data }', 'array', array);
  let descr: string;
  let body: Uint8Array;
  let shape: number[];
  if (array.dtype === 'unicode') {
    if (!Array.isArray(array.data)) throw invalidType('an array of strings', 'array.data', array.data);
    shape = checkShape(array.shape, array.data.length);
    ({ descr, body } = encodeStrings(array.data));
  } else if (array.dtype === 'float32' || array.dtype === 'float64') {
    const Type = array.dtype === 'float32' ? Float32Array : Float64Array;
    if (!(array.data instanceof Type)) throw invalidType(`a ${Type.name}`, 'array.data', array.data);
    shape = checkShape(array.shape, array.data.length);
    descr = array.dtype === 'float32' ? '<f4' : '<f8';
    const le = hostLittleEndian ? array.data : new Type(array.data);
    body = new Uint8Array(le.buffer, le.byteOffset, le.byteLength).slice();
    if (!hostLittleEndian) swapBytes(body, Type.BYTES_PER_ELEMENT);
  } else {
    throw invalidType("'float32', 'float64' or 'unicode'", 'array.dtype', (array as { dtype?: unknown }).dtype);
  }
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  // Version 1.0 keeps the header length in 2 bytes; 2.0 in 4 (only for headers that would not fit).
  const version = 10 + dict.length + 1 <= 0xffff ? 1 : 2;
  const prefix = version === 1 ? 10 : 12;
  const padded = Math.ceil((prefix + dict.length + 1) / ALIGN) * ALIGN;
  const headerLength = padded - prefix;
  const out = new Uint8Array(padded + body.length);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, headerLength, true);
  else dv.setUint32(8, headerLength, true);
  const header = dict.padEnd(headerLength - 1, ' ') + '\n';
  for (let k = 0; k < header.length; k++) out[prefix + k] = header.charCodeAt(k);
  out.set(body, padded);
  return out;
}

/**
 * Reads and parses a .npy file.
 *
 * @throws FaceError E_INPUT when the file cannot be read (missing, a folder, no permission); E_DATABASE
 *   when its contents are not a supported .npy array
 */
export async function readNpy(file: string): Promise<NpyArray> {
  if (typeof file !== 'string' || file.length === 0) throw invalidType('a file path', 'file', file);
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (cause) {
    throw new FaceError('E_INPUT', `Cannot read ${file}: ${(cause as Error).message}`, { cause });
  }
  return decodeNpy(bytes, file);
}

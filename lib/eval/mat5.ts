/**
 * A reader for the subset of MATLAB v5 .mat files that evaluation ground truth uses (WIDER FACE's
 * `wider_*_val.mat`): numeric arrays of every integer / floating class, char arrays and cell arrays,
 * stored plainly or zlib-compressed (miCOMPRESSED, MATLAB 7's default), either byte order.
 * Structs, objects, sparse matrices and v7.3 (HDF5) files are refused with E_INPUT.
 *
 * Everything is bounds-checked: a truncated or corrupt file gives FaceError E_INPUT naming the file
 * and the byte offset, never a RangeError from a Buffer read.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { FaceError } from '../errors';

export type MatNumericClass = 'double' | 'single' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64';

/** A numeric (or logical) array: `data` holds the real parts in MATLAB's column-major order. */
export interface MatNumeric {
  kind: 'numeric';
  class: MatNumericClass;
  dims: number[];
  data: Float64Array;
  /** Imaginary parts, for complex arrays only. */
  imag?: Float64Array;
  logical?: boolean;
}

/** A cell array: `cells` in column-major order. */
export interface MatCell {
  kind: 'cell';
  dims: number[];
  cells: MatValue[];
}

/** A char array is returned as a string; a char matrix with several rows as its rows joined by "\n". */
export type MatValue = MatNumeric | MatCell | string;

export interface MatFile {
  /** The 116-byte descriptive text of the header, trimmed. */
  header: string;
  /** Variables by name, in file order. */
  variables: Map<string, MatValue>;
}

// Data types (miXXX) and array classes (mxXXX) of the v5 format.
const MI_INT8 = 1, MI_UINT8 = 2, MI_INT16 = 3, MI_UINT16 = 4, MI_INT32 = 5, MI_UINT32 = 6;
const MI_SINGLE = 7, MI_DOUBLE = 9, MI_INT64 = 12, MI_UINT64 = 13, MI_MATRIX = 14, MI_COMPRESSED = 15;
const MI_UTF8 = 16, MI_UTF16 = 17, MI_UTF32 = 18;
const ELEMENT_SIZE: Record<number, number> = {
  [MI_INT8]: 1, [MI_UINT8]: 1, [MI_INT16]: 2, [MI_UINT16]: 2, [MI_INT32]: 4, [MI_UINT32]: 4,
  [MI_SINGLE]: 4, [MI_DOUBLE]: 8, [MI_INT64]: 8, [MI_UINT64]: 8, [MI_UTF8]: 1, [MI_UTF16]: 2, [MI_UTF32]: 4,
};
const MX_CELL = 1, MX_CHAR = 4;
const NUMERIC_CLASS: Record<number, MatNumericClass> = {
  6: 'double', 7: 'single', 8: 'int8', 9: 'uint8', 10: 'int16', 11: 'uint16', 12: 'int32', 13: 'uint32', 14: 'int64', 15: 'uint64',
};
const UNSUPPORTED_CLASS: Record<number, string> = { 2: 'struct', 3: 'object', 5: 'sparse', 16: 'function handle', 17: 'opaque' };
const FLAG_COMPLEX = 0x08, FLAG_LOGICAL = 0x02;

// Corrupt data could nest cells without end; MATLAB files in practice nest a few levels.
const MAX_DEPTH = 64;
// An inflated element may not exceed this (a corrupt stream must not exhaust memory).
const MAX_INFLATED = 1 << 30;

/** Where bytes come from, for messages: the file, and the compressed element when inside one. */
interface Region {
  bytes: Uint8Array;
  view: DataView;
  little: boolean;
  source: string;
  /** File offset of the compressed element whose inflated data this is; undefined for the file itself. */
  compressedAt?: number;
}

interface Element {
  type: number;
  /** The data's start and length within the region. */
  start: number;
  length: number;
  /** Offset of the tag, and of the next element. */
  at: number;
  next: number;
}

function fail(region: Region, offset: number, problem: string): FaceError {
  const where = region.compressedAt === undefined
    ? `byte offset ${offset}`
    : `byte offset ${offset} of the data inflated from the compressed element at byte offset ${region.compressedAt}`;
  return new FaceError('E_INPUT', `${region.source}: ${problem} at ${where}`);
}

/** Reads the element tag at `at` (regular or small format) and checks its data lies in [at, end). */
function readElement(region: Region, at: number, end: number): Element {
  if (at + 8 > end) throw fail(region, at, `truncated data element tag (${end - at} of 8 bytes)`);
  const first = region.view.getUint32(at, region.little);
  if (first >>> 16 !== 0) {
    // Small data element: type and byte count share the first 4 bytes, the data the next 4.
    const length = first >>> 16;
    if (length > 4) throw fail(region, at, `small data element claims ${length} bytes (at most 4)`);
    return { type: first & 0xffff, start: at + 4, length, at, next: at + 8 };
  }
  const length = region.view.getUint32(at + 4, region.little);
  const start = at + 8;
  if (length > end - start) throw fail(region, at, `truncated data element (type ${first}, ${length} bytes of data, ${end - start} left)`);
  // Elements are padded to 8 bytes, except compressed ones; a missing final pad is tolerated.
  const padded = first === MI_COMPRESSED ? length : (length + 7) & ~7;
  return { type: first, start, length, at, next: Math.min(start + padded, end) };
}

function expectType(region: Region, element: Element, types: number[], what: string): void {
  if (!types.includes(element.type)) throw fail(region, element.at, `${what} has data type ${element.type}, expected ${types.join(' or ')}`);
}

/** The numbers of a numeric data element (any integer or floating type) as doubles. */
function readNumbers(region: Region, element: Element, what: string): Float64Array {
  const size = ELEMENT_SIZE[element.type];
  if (size === undefined || element.type === MI_UTF8 || element.type === MI_UTF16 || element.type === MI_UTF32) {
    throw fail(region, element.at, `${what} has non-numeric data type ${element.type}`);
  }
  if (element.length % size !== 0) throw fail(region, element.at, `${what} has ${element.length} bytes, not a multiple of ${size}`);
  const count = element.length / size;
  const out = new Float64Array(count);
  const { view, little } = region;
  for (let i = 0, p = element.start; i < count; i++, p += size) {
    switch (element.type) {
      case MI_INT8: out[i] = view.getInt8(p); break;
      case MI_UINT8: out[i] = view.getUint8(p); break;
      case MI_INT16: out[i] = view.getInt16(p, little); break;
      case MI_UINT16: out[i] = view.getUint16(p, little); break;
      case MI_INT32: out[i] = view.getInt32(p, little); break;
      case MI_UINT32: out[i] = view.getUint32(p, little); break;
      case MI_SINGLE: out[i] = view.getFloat32(p, little); break;
      case MI_DOUBLE: out[i] = view.getFloat64(p, little); break;
      case MI_INT64: out[i] = Number(view.getBigInt64(p, little)); break;
      default: out[i] = Number(view.getBigUint64(p, little)); break; // MI_UINT64
    }
  }
  return out;
}

/** The characters of a char array's data element, one string per character (column-major). */
function readChars(region: Region, element: Element, count: number): string[] {
  const bytes = region.bytes.subarray(element.start, element.start + element.length);
  let chars: string[];
  switch (element.type) {
    case MI_UTF8:
      chars = Array.from(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
      break;
    case MI_INT8:
    case MI_UINT8:
      chars = Array.from(bytes, (b) => String.fromCharCode(b));
      break;
    case MI_UINT16:
    case MI_UTF16: {
      const units = readNumbers(region, { ...element, type: MI_UINT16 }, 'char data');
      chars = Array.from(units, (u) => String.fromCharCode(u));
      break;
    }
    case MI_UTF32: {
      const points = readNumbers(region, { ...element, type: MI_UINT32 }, 'char data');
      chars = Array.from(points, (p) => {
        if (p > 0x10ffff) throw fail(region, element.at, `char data holds an invalid code point ${p}`);
        return String.fromCodePoint(p);
      });
      break;
    }
    default:
      throw fail(region, element.at, `char data has data type ${element.type}`);
  }
  if (chars.length !== count) throw fail(region, element.at, `char data holds ${chars.length} characters, dimensions say ${count}`);
  return chars;
}

/** Parses the body of an miMATRIX element (array flags, dimensions, name, data). */
function readMatrix(region: Region, element: Element, depth: number): { name: string; value: MatValue } {
  if (depth > MAX_DEPTH) throw fail(region, element.at, `arrays nested deeper than ${MAX_DEPTH} levels`);
  const end = element.start + element.length;
  // MATLAB writes an empty array (e.g. an empty cell's content) as an miMATRIX with no bytes.
  if (element.length === 0) return { name: '', value: { kind: 'numeric', class: 'double', dims: [0, 0], data: new Float64Array(0) } };

  const flags = readElement(region, element.start, end);
  expectType(region, flags, [MI_UINT32], 'array flags');
  if (flags.length < 8) throw fail(region, flags.at, `array flags have ${flags.length} bytes (expected 8)`);
  const flagWord = region.view.getUint32(flags.start, region.little);
  const cls = flagWord & 0xff;
  const flagBits = (flagWord >>> 8) & 0xff;

  const dimsElement = readElement(region, flags.next, end);
  expectType(region, dimsElement, [MI_INT32], 'dimensions');
  const dims = Array.from(readNumbers(region, dimsElement, 'dimensions'));
  if (dims.length < 2) throw fail(region, dimsElement.at, `an array has ${dims.length} dimensions (at least 2)`);
  let count = 1;
  for (const d of dims) {
    if (d < 0) throw fail(region, dimsElement.at, `negative dimension ${d}`);
    count *= d;
  }
  if (count > 0x7fffffff) throw fail(region, dimsElement.at, `an array of ${count} elements`);

  const nameElement = readElement(region, dimsElement.next, end);
  expectType(region, nameElement, [MI_INT8, MI_UINT8], 'array name');
  const name = Buffer.from(region.bytes.buffer, region.bytes.byteOffset + nameElement.start, nameElement.length).toString('latin1');

  if (UNSUPPORTED_CLASS[cls] !== undefined) throw fail(region, element.at, `${UNSUPPORTED_CLASS[cls]} arrays are not supported by this reader`);

  if (cls === MX_CELL) {
    const cells: MatValue[] = [];
    let at = nameElement.next;
    for (let i = 0; i < count; i++) {
      const cell = readElement(region, at, end);
      expectType(region, cell, [MI_MATRIX], `cell ${i + 1} of ${count}`);
      cells.push(readMatrix(region, cell, depth + 1).value);
      at = cell.next;
    }
    return { name, value: { kind: 'cell', dims, cells } };
  }

  if (cls === MX_CHAR) {
    const dataElement = readElement(region, nameElement.next, end);
    const chars = readChars(region, dataElement, count);
    const rows = dims[0];
    if (rows <= 1) return { name, value: chars.join('') };
    const columns = count / rows;
    const lines: string[] = [];
    for (let r = 0; r < rows; r++) {
      let line = '';
      for (let c = 0; c < columns; c++) line += chars[r + rows * c];
      lines.push(line);
    }
    return { name, value: lines.join('\n') };
  }

  const numericClass = NUMERIC_CLASS[cls];
  if (numericClass === undefined) throw fail(region, flags.at, `unknown array class ${cls}`);
  const realElement = readElement(region, nameElement.next, end);
  const data = readNumbers(region, realElement, 'real part');
  if (data.length !== count) throw fail(region, realElement.at, `real part holds ${data.length} numbers, dimensions say ${count}`);
  const value: MatNumeric = { kind: 'numeric', class: numericClass, dims, data };
  if (flagBits & FLAG_COMPLEX) {
    const imagElement = readElement(region, realElement.next, end);
    const imag = readNumbers(region, imagElement, 'imaginary part');
    if (imag.length !== count) throw fail(region, imagElement.at, `imaginary part holds ${imag.length} numbers, dimensions say ${count}`);
    value.imag = imag;
  }
  if (flagBits & FLAG_LOGICAL) value.logical = true;
  return { name, value };
}

/**
 * Parses a MATLAB v5 .mat file held in memory. `source` names it in error messages.
 */
export function readMat5(bytes: Uint8Array, source: string): MatFile {
  const file: Region = { bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), little: true, source };
  if (bytes.length < 128) throw fail(file, bytes.length, `not a MATLAB v5 file: the 128-byte header is truncated (${bytes.length} bytes)`);
  const header = Buffer.from(bytes.buffer, bytes.byteOffset, 116).toString('latin1').replace(/[\0 ]+$/, '');
  if (header.startsWith('MATLAB 7.3')) throw fail(file, 0, 'MATLAB v7.3 (HDF5) files are not supported; save with -v7 or -v6');
  if (!header.startsWith('MATLAB 5.0 MAT-file')) throw fail(file, 0, 'not a MATLAB v5 file (the header does not start with "MATLAB 5.0 MAT-file")');
  const endian = String.fromCharCode(bytes[126], bytes[127]);
  if (endian === 'MI') file.little = false;
  else if (endian !== 'IM') throw fail(file, 126, `unknown byte-order mark ${JSON.stringify(endian)}`);
  const version = file.view.getUint16(124, file.little);
  if (version !== 0x0100) throw fail(file, 124, `unknown version 0x${version.toString(16)}`);

  const variables = new Map<string, MatValue>();
  let at = 128;
  while (at < bytes.length) {
    const element = readElement(file, at, bytes.length);
    let region = file;
    let matrix = element;
    if (element.type === MI_COMPRESSED) {
      let inflated: Buffer;
      try {
        inflated = zlib.inflateSync(bytes.subarray(element.start, element.start + element.length), { maxOutputLength: MAX_INFLATED });
      } catch (error) {
        throw fail(file, element.at, `corrupt compressed element (${(error as Error).message})`);
      }
      region = { bytes: inflated, view: new DataView(inflated.buffer, inflated.byteOffset, inflated.byteLength), little: file.little, source, compressedAt: element.at };
      matrix = readElement(region, 0, inflated.length);
    }
    if (matrix.type !== MI_MATRIX) throw fail(region, matrix.at, `a top-level element of data type ${matrix.type} (expected a matrix)`);
    const { name, value } = readMatrix(region, matrix, 0);
    variables.set(name, value);
    at = element.next;
  }
  return { header, variables };
}

/** Reads and parses a .mat file; the message of any error names the file. */
export function readMat5File(file: string): MatFile {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    throw new FaceError('E_INPUT', `Cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  return readMat5(bytes, path.basename(file));
}

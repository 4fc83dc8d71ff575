// NumPy .npy files (lib/pipeline/npy.ts): what NumPy writes reads back exactly, what we write is what
// NumPy writes, and anything damaged or unsafe is refused with E_DATABASE, never a crash.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FaceError } from '../lib/errors';
import { decodeNpy, encodeNpy, readNpy, type NpyArray } from '../lib/pipeline/npy';
import { SeededRandom } from '../lib/onnx/random';
import { expectRejects } from './helpers/assertions';

// Written by NumPy 2.4.6 (np.save / np.lib.format.write_array), base64:
const NUMPY = {
  // np.save(f, np.array([[1.5, -2, 3], [0.25, 1e-3, -7e5]], dtype='<f4'))
  f4: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAMA/AAAAwAAAQEAAAIA+bxKDOgDmKsk=',
  // np.save(f, np.array(["Zoë", "张学友", "Bob_x", "𝒜lice"]))  → '<U5'
  names: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPFU1JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDQsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIApaAAAAbwAAAOsAAAAAAAAAAAAAACBfAABmWwAAy1MAAAAAAAAAAAAAQgAAAG8AAABiAAAAXwAAAHgAAACc1AEAbAAAAGkAAABjAAAAZQAAAA==',
  // np.save(f, np.array([[1.5, -2], [3.25, 1e300]], dtype='>f8'))
  beF8: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPmY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDIpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAo/+AAAAAAAAMAAAAAAAAAAQAoAAAAAAAB+N+Q8iAB1nA==',
  // np.save(f, np.asfortranarray(np.arange(6, dtype='<f4').reshape(2, 3)))
  fortran: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAABAQAAAgD8AAIBAAAAAQAAAoEA=',
  // np.save(f, np.array([{'a': 1}, None], dtype=object), allow_pickle=True)
  pickle: 'k05VTVBZAQB2AHsnZGVzY3InOiAnfE8nLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAqABJWUAAAAAAAAAIwWbnVtcHkuX2NvcmUubXVsdGlhcnJheZSMDF9yZWNvbnN0cnVjdJSTlIwFbnVtcHmUjAduZGFycmF5lJOUSwCFlEMBYpSHlFKUKEsBSwKFlGgDjAVkdHlwZZSTlIwCTziUiYiHlFKUKEsDjAF8lE5OTkr/////Sv////9LP3SUYoldlCh9lIwBYZRLAXNOZXSUYi4=',
  // np.lib.format.write_array(f, np.array([[1, 2], [3, 4]], dtype='<f4'), version=(2, 0))
  v2: 'k05VTVBZAgB0AAAAeydkZXNjcic6ICc8ZjQnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwgMiksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAIA/AAAAQAAAQEAAAIBA',
  // np.lib.format.write_array(f, np.array(["a", "é"]), version=(3, 0))
  v3: 'k05VTVBZAwB0AAAAeydkZXNjcic6ICc8VTEnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAphAAAA6QAAAA==',
  // np.save(f, np.array([]))  → float64, shape (0,)
  empty: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDAsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAo=',
};
const numpy = (key: keyof typeof NUMPY) => new Uint8Array(Buffer.from(NUMPY[key], 'base64'));

/** A .npy file by hand: magic, version, header length (2 bytes for 1.0, 4 for 2.0/3.0), header, body. */
function handBuilt(header: string, body: Uint8Array, major = 1): Uint8Array {
  const prefix = major === 1 ? 10 : 12;
  const text = Buffer.from(header, major === 3 ? 'utf8' : 'latin1');
  const headerLength = Math.ceil((prefix + text.length + 1) / 64) * 64 - prefix;
  const out = new Uint8Array(prefix + headerLength + body.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const dv = new DataView(out.buffer);
  if (major === 1) dv.setUint16(8, headerLength, true);
  else dv.setUint32(8, headerLength, true);
  out.fill(0x20, prefix, prefix + headerLength - 1);
  out.set(text, prefix);
  out[prefix + headerLength - 1] = 0x0a;
  out.set(body, prefix + headerLength);
  return out;
}

const f4 = (...values: number[]) => new Uint8Array(new Float32Array(values).buffer);
const decodes = (bytes: Uint8Array) => Promise.resolve().then(() => decodeNpy(bytes, 'test.npy'));
const encodes = (array: unknown) => Promise.resolve().then(() => encodeNpy(array as NpyArray));
const header = (descr: string, shape: string, fortran = 'False') => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;

t.test('invalid input', async (t) => {
  // Argument mistakes: TypeError / RangeError, code E_INPUT.
  await expectRejects(t, decodes('abc' as unknown as Uint8Array), 'E_INPUT', /^Expected a Uint8Array for bytes but received "abc"$/, 'a string as bytes', TypeError);
  await expectRejects(t, encodes({ dtype: 'int8', shape: [1], data: new Int8Array(1) }), 'E_INPUT',
    /^Expected 'float32', 'float64' or 'unicode' for array.dtype but received "int8"$/, 'unsupported dtype to write', TypeError);
  await expectRejects(t, encodes({ dtype: 'float32', shape: [2], data: new Float64Array(2) }), 'E_INPUT',
    /^Expected a Float32Array for array.data but received Float64Array of length 2$/, 'float32 with a Float64Array', TypeError);
  await expectRejects(t, encodes({ dtype: 'float32', shape: [2, 3], data: new Float32Array(5) }), 'E_INPUT',
    /^Expected 6 values for an array of shape \(2, 3\) but received 5$/, 'shape and data disagree', RangeError);
  await expectRejects(t, encodes({ dtype: 'float32', shape: [1, 1, 2], data: new Float32Array(2) }), 'E_INPUT',
    /^Expected 1 or 2 non-negative integer dimensions for array.shape/, '3-D to write', RangeError);
  await expectRejects(t, encodes({ dtype: 'unicode', shape: [2], data: ['a', 'b\0'] }), 'E_INPUT',
    /^Expected a string without NUL characters for array.data\[1\]/, 'a string with NUL', RangeError);
  await expectRejects(t, encodes(null), 'E_INPUT', /^Expected an array \{ dtype, shape, data \} for array but received null$/, 'null array', TypeError);
  await expectRejects(t, readNpy(42 as unknown as string), 'E_INPUT', /^Expected a file path for file but received number 42$/, 'a number as path', TypeError);
  const missing = path.join(os.tmpdir(), `facesight-no-such-${process.pid}.npy`);
  await expectRejects(t, readNpy(missing), 'E_INPUT', /^Cannot read .*facesight-no-such-.*ENOENT/, 'a missing file');

  // Damaged or unsupported contents: FaceError E_DATABASE naming the file.
  await expectRejects(t, decodes(new Uint8Array(0)), 'E_DATABASE', /^test.npy is not a valid .npy file: the file is empty$/, 'empty');
  await expectRejects(t, decodes(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10, 0, 0, 0, 0])), 'E_DATABASE', /does not start with the .npy magic/, 'a PNG');
  const v4 = handBuilt(header('<f4', '(1,)'), f4(1));
  v4[6] = 4;
  await expectRejects(t, decodes(v4), 'E_DATABASE', /unsupported format version 4.0/, 'format 4.0');
  const longHeader = handBuilt(header('<f4', '(1,)'), f4(1));
  new DataView(longHeader.buffer).setUint16(8, 5000, true);
  await expectRejects(t, decodes(longHeader), 'E_DATABASE', /^test.npy is truncated: the header says 5000 bytes but the file ends after \d+$/, 'header longer than the file');
  await expectRejects(t, decodes(handBuilt('[1, 2]', f4())), 'E_DATABASE', /the header is not a dict/, 'a list as header');
  await expectRejects(t, decodes(handBuilt("{'descr': '<f4', 'shape': (2,", f4())), 'E_DATABASE', /malformed header \(unexpected end/, 'unterminated header');
  await expectRejects(t, decodes(handBuilt("{'descr': '<f4', 'shape': (1,), }", f4(1))), 'E_DATABASE', /the header has no 'fortran_order'/, 'missing key');
  await expectRejects(t, decodes(handBuilt("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", f4(1))), 'E_DATABASE',
    /unexpected key 'extra'/, 'extra key');
  await expectRejects(t, decodes(handBuilt("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", f4(1))), 'E_DATABASE',
    /key 'descr' repeated/, 'repeated key');
  await expectRejects(t, decodes(handBuilt(header('<i4', '(1,)'), f4(1))), 'E_DATABASE',
    /unsupported dtype '<i4'; expected float32 \('<f4'\), float64 \('<f8'\) or unicode strings/, 'int32');
  await expectRejects(t, decodes(handBuilt("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", f4(1))), 'E_DATABASE',
    /structured arrays are not read/, 'structured dtype');
  await expectRejects(t, decodes(handBuilt(header('<f4', '(1, 1, 1)'), f4(1))), 'E_DATABASE', /a 3-D array \(shape \(1, 1, 1\)\); 1-D and 2-D arrays are read/, '3-D');
  await expectRejects(t, decodes(handBuilt(header('<f4', '()'), f4(1))), 'E_DATABASE', /a 0-D array/, '0-D');
  await expectRejects(t, decodes(handBuilt(header('<f4', '(-1,)'), f4(1))), 'E_DATABASE', /the shape has a dimension -1/, 'negative dimension');
  await expectRejects(t, decodes(handBuilt(header('<f4', '[1]'), f4(1))), 'E_DATABASE', /the shape is a list, not a tuple/, 'shape as list');
  await expectRejects(t, decodes(handBuilt(header('<f4', '(1,)', 'None'), f4(1))), 'E_DATABASE', /fortran_order is None/, 'fortran_order None');
  await expectRejects(t, decodes(handBuilt(header('<f4', '(99999999999, 99999999999)'), f4(1))), 'E_DATABASE', /is too large/, 'huge shape');
  await expectRejects(t, decodes(handBuilt(header('<U1', '(1,)'), new Uint8Array([0, 0xd8, 0, 0]))), 'E_DATABASE',
    /string 0 holds an invalid code point 0xd800/, 'a surrogate in a unicode array');
  await expectRejects(t, decodes(handBuilt(header('<f4', '(1,)'), f4(1, 2))), 'E_DATABASE', /expected 4 bytes of data but found 8 \(trailing bytes\)/, 'trailing bytes');

  // NumPy's own files that are refused on purpose.
  await expectRejects(t, decodes(numpy('fortran')), 'E_DATABASE', /a 2-D array in Fortran order \(fortran_order True\)/, 'Fortran order 2-D');
  await expectRejects(t, decodes(numpy('pickle')), 'E_DATABASE',
    /^test.npy holds a pickled object array \(dtype '\|O'\); pickled arrays are not read, because unpickling a file can run arbitrary code/, 'pickled object array');

  // Cut in half: inside the header for a small file, inside the data for a larger one.
  const small = numpy('f4');
  await expectRejects(t, decodes(small.subarray(0, small.length >> 1)), 'E_DATABASE', /^test.npy is truncated: the header says 118 bytes but the file ends after 66$/, 'small file cut in half');
  const big = encodeNpy({ dtype: 'float32', shape: [10, 128], data: new Float32Array(1280).fill(0.5) });
  t.equal(big.length, 128 + 5120, 'the larger file: 128 header bytes + 5120 data bytes');
  await expectRejects(t, decodes(big.subarray(0, big.length >> 1)), 'E_DATABASE', /^test.npy is truncated: expected 5120 bytes of data but found 2496$/, 'large file cut in half');
});

t.test('NumPy files read back exactly', async (t) => {
  const a = decodeNpy(numpy('f4'));
  t.equal(a.dtype, 'float32');
  t.same(a.shape, [2, 3]);
  t.same(Array.from(a.data as Float32Array), Array.from(new Float32Array([1.5, -2, 3, 0.25, 1e-3, -7e5])), 'float32 values');

  const names = decodeNpy(numpy('names'));
  t.equal(names.dtype, 'unicode');
  t.same(names.shape, [4]);
  t.same(names.data, ['Zoë', '张学友', 'Bob_x', '𝒜lice'], "'<U5' names, non-ASCII and outside the BMP");

  const be = decodeNpy(numpy('beF8'));
  t.equal(be.dtype, 'float64', "'>f8' reads as float64");
  t.same(be.shape, [2, 2]);
  t.same(Array.from(be.data as Float64Array), [1.5, -2, 3.25, 1e300], 'big-endian values byte-swapped');

  const v2 = decodeNpy(numpy('v2'));
  t.same([v2.dtype, v2.shape, Array.from(v2.data as Float32Array)], ['float32', [2, 2], [1, 2, 3, 4]], 'format 2.0 from NumPy');
  const v3 = decodeNpy(numpy('v3'));
  t.same([v3.dtype, v3.shape, v3.data], ['unicode', [2], ['a', 'é']], 'format 3.0 from NumPy');
  const empty = decodeNpy(numpy('empty'));
  t.same([empty.dtype, empty.shape, empty.data.length], ['float64', [0], 0], 'np.save([])');
});

t.test('hand-built files', async (t) => {
  const v2 = decodeNpy(handBuilt(header('<f8', '(3,)'), new Uint8Array(new Float64Array([1, 2.5, -3]).buffer), 2));
  t.same([v2.dtype, v2.shape, Array.from(v2.data as Float64Array)], ['float64', [3], [1, 2.5, -3]], 'format 2.0 (4-byte header length)');

  const beBody = new Uint8Array(8);
  new DataView(beBody.buffer).setFloat32(0, 1.25, false);
  new DataView(beBody.buffer).setFloat32(4, -0.5, false);
  const be = decodeNpy(handBuilt(header('>f4', '(1, 2)'), beBody));
  t.same([be.dtype, be.shape, Array.from(be.data as Float32Array)], ['float32', [1, 2], [1.25, -0.5]], "'>f4'");

  const beU = new Uint8Array(8);
  new DataView(beU.buffer).setUint32(0, 0x5f20, false); // 张
  const names = decodeNpy(handBuilt(header('>U2', '(1,)'), beU));
  t.same(names.data, ['张'], "'>U2' (UTF-32BE), NUL padding removed");

  const fortran1d = decodeNpy(handBuilt(header('<f4', '(3,)', 'True'), f4(1, 2, 3)));
  t.same(Array.from(fortran1d.data as Float32Array), [1, 2, 3], 'Fortran order is accepted for 1-D arrays (the same bytes)');

  // Python 2's NumPy: double quotes allowed, longs with an L suffix, no trailing comma.
  const py2 = decodeNpy(handBuilt('{"descr": "<f4", "fortran_order": False, "shape": (2L, 1L)}', f4(7, 8)));
  t.same([py2.shape, Array.from(py2.data as Float32Array)], [[2, 1], [7, 8]], 'Python 2 header');

  // Data that starts at an odd offset of its buffer is copied, not viewed misaligned.
  const file = handBuilt(header('<f4', '(2,)'), f4(3, 4));
  const shifted = new Uint8Array(file.length + 1);
  shifted.set(file, 1);
  t.same(Array.from(decodeNpy(shifted.subarray(1)).data as Float32Array), [3, 4], 'unaligned input');
});

t.test('what we write is what NumPy writes, and reads back', async (t) => {
  const values = new Float32Array([1.5, -2, 3, 0.25, 1e-3, -7e5]);
  const bytes = encodeNpy({ dtype: 'float32', shape: [2, 3], data: values });
  t.same(Buffer.from(bytes), Buffer.from(numpy('f4')), "float32 [2, 3]: the same bytes as NumPy's np.save");
  t.equal(bytes[6], 1, 'format 1.0');
  const text = Buffer.from(bytes.subarray(10, 128)).toString('latin1');
  t.match(text, /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\), \} +\n$/, 'the header dict, padded with spaces, ends in a newline');
  t.equal(bytes.length % 16, 8, '24 data bytes after a 128-byte header');
  const back = decodeNpy(bytes);
  t.same([back.dtype, back.shape, Array.from(back.data as Float32Array)], ['float32', [2, 3], Array.from(values)], 'float32 round trip');

  const names = ['Zoë', '张学友', 'Bob_x', '𝒜lice'];
  const nameBytes = encodeNpy({ dtype: 'unicode', shape: [4], data: names });
  t.same(Buffer.from(nameBytes), Buffer.from(numpy('names')), "names: the same bytes as NumPy's np.save (dtype '<U5')");
  t.same(decodeNpy(nameBytes).data, names, 'names round trip');

  const f64 = new Float64Array([Math.PI, -1e-300, 0]);
  const back64 = decodeNpy(encodeNpy({ dtype: 'float64', shape: [3, 1], data: f64 }));
  t.same([back64.dtype, back64.shape, Array.from(back64.data as Float64Array)], ['float64', [3, 1], Array.from(f64)], 'float64 round trip');

  const none = decodeNpy(encodeNpy({ dtype: 'unicode', shape: [0], data: [] }));
  t.same([none.dtype, none.shape, none.data], ['unicode', [0], []], 'an empty names array');
  const emptyRows = decodeNpy(encodeNpy({ dtype: 'float32', shape: [0, 128], data: new Float32Array(0) }));
  t.same([emptyRows.shape, emptyRows.data.length], [[0, 128], 0], 'zero rows of 128');

  // Every header is padded so that the data starts at a multiple of 64.
  for (const shape of [[1], [7, 3], [123456, 0], [0, 99999]]) {
    const count = shape.reduce((a, b) => a * b, 1);
    const out = encodeNpy({ dtype: 'float32', shape, data: new Float32Array(count) });
    t.equal((out.length - count * 4) % 64, 0, `data aligned to 64 for shape (${shape.join(', ')})`);
  }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facesight-npy-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'a.npy');
  fs.writeFileSync(file, nameBytes);
  t.same((await readNpy(file)).data, names, 'readNpy reads a file');
  await expectRejects(t, readNpy(dir), 'E_INPUT', /^Cannot read .*EISDIR/, 'readNpy of a folder');
  fs.writeFileSync(file, nameBytes.subarray(0, 140));
  await expectRejects(t, readNpy(file), 'E_DATABASE', new RegExp(`^${file.replace(/[.\\]/g, '\\$&')} is truncated: expected 80 bytes of data but found 12$`), 'readNpy names the file');
});

t.test('garbage never crashes the reader', async (t) => {
  // Every prefix, and random damage: either a clean result or a FaceError E_DATABASE, nothing else.
  const sources = [numpy('f4'), numpy('names'), numpy('v2'), numpy('v3'), numpy('beF8')];
  const random = new SeededRandom(11);
  let cases = 0;
  const wrong: string[] = [];
  const attempt = (bytes: Uint8Array, what: string) => {
    cases++;
    try {
      const out = decodeNpy(bytes, 'fuzz.npy');
      if (out.data.length !== out.shape.reduce((a, b) => a * b, 1)) wrong.push(`${what}: data length ${out.data.length} for shape ${out.shape}`);
    } catch (error) {
      if (!(error instanceof FaceError) || error.code !== 'E_DATABASE') wrong.push(`${what}: ${(error as Error)?.stack ?? error}`);
    }
  };
  sources.forEach((src, s) => {
    for (let n = 0; n < src.length; n++) attempt(src.subarray(0, n), `source ${s} cut at ${n}`);
    for (let k = 0; k < 400; k++) {
      const copy = src.slice();
      const flips = 1 + Math.floor(random.uniform(0, 4));
      for (let f = 0; f < flips; f++) copy[Math.floor(random.uniform(0, copy.length))] = Math.floor(random.uniform(0, 256));
      attempt(copy, `source ${s} mutation ${k}`);
    }
  });
  for (let k = 0; k < 200; k++) {
    const noise = new Uint8Array(Math.floor(random.uniform(0, 300)));
    for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(random.uniform(0, 256));
    if (k % 2 === 0) noise.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1 + (k % 3), 0].slice(0, noise.length));
    attempt(noise, `noise ${k}`);
  }
  t.same(wrong, [], `${cases} damaged inputs: each decoded consistently or refused with E_DATABASE`);
});

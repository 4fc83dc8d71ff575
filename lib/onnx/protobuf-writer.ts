/**
 * Minimal protocol-buffers wire-format encoder: just what writing ONNX models needs.
 *
 * Wire types (protobuf encoding spec): 0 = varint, 1 = 64-bit, 2 = length-delimited, 5 = 32-bit.
 * Nested messages are written into their own ProtoWriter first and embedded as length-delimited
 * bytes; ONNX models are small enough (tens of MB) that the extra copy does not matter.
 */

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

const textEncoder = new TextEncoder();

export class ProtoWriter {
  private buffer: Uint8Array;
  private length = 0;
  private readonly scratch = new DataView(new ArrayBuffer(4));

  constructor(initialCapacity = 256) {
    this.buffer = new Uint8Array(Math.max(16, initialCapacity));
  }

  /** Bytes written so far (a copy, so the writer may be reused). */
  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }

  get byteLength(): number {
    return this.length;
  }

  /** Integer field (int32/int64/uint64/enum/bool) as a varint; negatives take ten bytes, as int64 does. */
  int(field: number, value: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    this.rawVarint(value);
    return this;
  }

  /** `float` field (fixed32, IEEE-754 little-endian). */
  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    this.scratch.setFloat32(0, value, true);
    this.rawBytes(new Uint8Array(this.scratch.buffer));
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.rawVarint(value.length);
    this.rawBytes(value);
    return this;
  }

  /** Embedded message, given as a finished writer or its bytes. */
  message(field: number, value: ProtoWriter | Uint8Array): this {
    return this.bytes(field, value instanceof ProtoWriter ? value.finish() : value);
  }

  /** Packed repeated varints (repeated int64/int32 in proto3 are packed by default). */
  packedInts(field: number, values: ArrayLike<number | bigint>): this {
    const body = new ProtoWriter(values.length * 2);
    for (let i = 0; i < values.length; i++) body.rawVarint(values[i]!);
    return this.bytes(field, body.finish());
  }

  /** Packed repeated floats. */
  packedFloats(field: number, values: ArrayLike<number>): this {
    const body = new Uint8Array(values.length * 4);
    const view = new DataView(body.buffer);
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
    return this.bytes(field, body);
  }

  private tag(field: number, wireType: number): void {
    if (!Number.isInteger(field) || field < 1 || field > 0x1fffffff) {
      throw new RangeError(`Expected a protobuf field number in [1, 2^29) but received ${field}`);
    }
    this.rawVarint(field * 8 + wireType);
  }

  private rawVarint(value: number | bigint): void {
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) {
        throw new RangeError(`Expected a safe integer for a varint but received ${value}`);
      }
      // Fast path: small non-negative numbers need no BigInt arithmetic.
      if (value >= 0 && value <= 0x7fffffff) {
        this.reserve(5);
        while (value > 0x7f) {
          this.buffer[this.length++] = (value & 0x7f) | 0x80;
          value >>>= 7;
        }
        this.buffer[this.length++] = value;
        return;
      }
      value = BigInt(value);
    }
    // Negative values are encoded as their 64-bit two's complement.
    let v = BigInt.asUintN(64, value);
    this.reserve(10);
    while (v > 0x7fn) {
      this.buffer[this.length++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buffer[this.length++] = Number(v);
  }

  private rawBytes(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  private reserve(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.buffer.length) return;
    let capacity = this.buffer.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
  }
}

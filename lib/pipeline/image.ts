/**
 * Image inputs → 8-bit frames for the native pipeline.
 *
 * An input is one of:
 * - a file path (string): read, then decoded like the bytes below;
 * - an encoded image (Buffer or Uint8Array: JPEG, PNG, WebP, GIF, TIFF, AVIF, … whatever sharp reads);
 * - a raw frame `{ data, width, height, channels }`: 8-bit pixels, interleaved, tightly packed rows,
 *   channels 1 (grey), 3 (RGB) or 4 (RGBA); data a Uint8Array, Buffer or Uint8ClampedArray. Used in
 *   place (no copy).
 *
 * Decoding (sharp): the EXIF orientation is applied, so coordinates refer to the image as it is
 * displayed; grey images stay 1 channel (grey + alpha loses the alpha), RGB stays 3 and RGBA 4;
 * anything else (CMYK, 16-bit, Lab, palettes, …) becomes 8-bit sRGB. Images larger than
 * `limitInputPixels` (width × height, read from the header before any pixel is decoded) are refused,
 * which guards against decompression bombs. Corrupt or truncated files reject with FaceError E_INPUT.
 *
 * JS validates, C++ trusts: every frame that leaves this module has been checked here.
 */
import * as fs from 'node:fs/promises';
import sharp from 'sharp';
import { FaceError, FaceRangeError, describeValue, invalidRange, invalidType } from '../errors';

/** A raw 8-bit frame as the caller may give it. */
export interface RawFrame {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: 1 | 3 | 4;
}

/** What the detector accepts: a file path, the bytes of an encoded image, or a raw frame. */
export type ImageInput = string | Uint8Array | RawFrame;

/** A decoded or validated frame: interleaved HWC, tightly packed, `data.length = width · height · channels`. */
export interface Frame {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3 | 4;
}

export interface DecodeOptions {
  /** Refuse encoded images of more pixels (width × height) than this. Default 100 000 000. */
  limitInputPixels?: number;
  /** How many images of a batch are decoded at once (default 4). */
  concurrency?: number;
}

export const DEFAULT_LIMIT_INPUT_PIXELS = 100_000_000;
const DEFAULT_CONCURRENCY = 4;
const INPUT_KINDS = 'a file path, an encoded image (Buffer or Uint8Array) or a raw frame { data, width, height, channels }';

/** Checks `limitInputPixels` (an option of several functions). */
export function checkLimitInputPixels(value: unknown, what = 'options.limitInputPixels'): number {
  if (value === undefined) return DEFAULT_LIMIT_INPUT_PIXELS;
  if (typeof value !== 'number') throw invalidType('a positive integer (pixels)', what, value);
  if (!Number.isSafeInteger(value) || value < 1) throw invalidRange('a positive integer (pixels)', what, value);
  return value;
}

function checkConcurrency(value: unknown): number {
  if (value === undefined) return DEFAULT_CONCURRENCY;
  if (typeof value !== 'number') throw invalidType('an integer from 1 to 64', 'options.concurrency', value);
  if (!Number.isInteger(value) || value < 1 || value > 64) throw invalidRange('an integer from 1 to 64', 'options.concurrency', value);
  return value;
}

function isRawFrameLike(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) && !Array.isArray(value) && 'data' in value;
}

/**
 * Checks a raw frame and returns it as a {@link Frame} over the same memory. `what` names it in
 * messages ('frame', 'inputs[2]').
 *
 * @throws FaceTypeError / FaceRangeError (code E_INPUT)
 */
export function validateFrame(frame: unknown, what = 'frame'): Frame {
  if (!isRawFrameLike(frame)) throw invalidType('a raw frame { data, width, height, channels }', what, frame);
  const { data, width, height, channels } = frame;
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) {
    throw invalidType('a Uint8Array, Buffer or Uint8ClampedArray of 8-bit pixels', `${what}.data`, data);
  }
  for (const [name, value] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (typeof value !== 'number') throw invalidType('a positive integer (pixels)', `${what}.${name}`, value);
    if (!Number.isSafeInteger(value) || value < 1 || value > 0x7fffffff) throw invalidRange('a positive integer (pixels)', `${what}.${name}`, value);
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    const expected = '1 (grey), 3 (RGB) or 4 (RGBA)';
    throw typeof channels === 'number' ? invalidRange(expected, `${what}.channels`, channels) : invalidType(expected, `${what}.channels`, channels);
  }
  const w = width as number;
  const h = height as number;
  const expected = w * h * channels;
  if (data.length !== expected) {
    throw new FaceRangeError(`Expected ${expected} bytes (${w}×${h}×${channels}) for ${what}.data but received ${data.length}`);
  }
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { data: bytes, width: w, height: h, channels };
}

function label(input: string | Uint8Array, what: string): string {
  return typeof input === 'string' ? `${what} '${input}'` : `${what} (${describeValue(input)})`;
}

/**
 * Decodes an encoded image (bytes, or a file read first) into a frame.
 *
 * @throws FaceError E_INPUT: unreadable file, empty or unrecognised data, corrupt or truncated image,
 *   more pixels than `limit`
 */
async function decodeEncoded(input: string | Uint8Array, limit: number, what: string): Promise<Frame> {
  let bytes: Uint8Array;
  if (typeof input === 'string') {
    if (input.length === 0) throw invalidRange('a file path', what, input);
    try {
      bytes = await fs.readFile(input);
    } catch (cause) {
      throw new FaceError('E_INPUT', `Cannot read image file '${input}' (${what}): ${(cause as Error).message}`, { cause });
    }
  } else {
    bytes = input;
  }
  if (bytes.byteLength === 0) {
    throw new FaceError('E_INPUT', `Cannot decode ${label(input, what)}: the ${typeof input === 'string' ? 'file' : 'data'} is empty (0 bytes)`);
  }
  const fail = (cause: unknown): FaceError =>
    new FaceError('E_INPUT', `Cannot decode ${label(input, what)}: ${String((cause as Error)?.message ?? cause).trim().replace(/:$/, '')}`, { cause });

  // The header first: its size is checked against our limit before any pixel is decoded (sharp's
  // own check is off here only to tell the size in the message; the decode below enforces it again).
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false, failOn: 'error' }).metadata();
  } catch (cause) {
    throw fail(cause);
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  if (!(width >= 1 && height >= 1)) {
    throw new FaceError('E_INPUT', `Cannot decode ${label(input, what)}: the image has no pixels (${width} × ${height})`);
  }
  if (width * height > limit) {
    throw new FaceError(
      'E_INPUT',
      `Cannot decode ${label(input, what)}: it is ${width} × ${height} = ${width * height} pixels, more than the limit of ${limit} ` +
        '(a guard against decompression bombs; raise it with the option limitInputPixels)',
    );
  }

  const grey = meta.space === 'b-w' || meta.space === 'grey16';
  let pipeline = sharp(bytes, { limitInputPixels: limit, failOn: 'error' }).rotate();
  if (grey) {
    pipeline = pipeline.toColourspace('b-w');
    if (meta.hasAlpha) pipeline = pipeline.removeAlpha();
  } else {
    pipeline = pipeline.toColourspace('srgb');
  }
  let result: { data: Buffer; info: sharp.OutputInfo };
  try {
    result = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (cause) {
    throw fail(cause);
  }
  const { data, info } = result;
  let channels = info.channels as number;
  let pixels: Uint8Array = data;
  if (channels === 2) {
    // Grey + alpha that removeAlpha did not take (should not happen): keep the grey plane.
    pixels = new Uint8Array(info.width * info.height);
    for (let i = 0; i < pixels.length; i++) pixels[i] = data[2 * i];
    channels = 1;
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new FaceError('E_INPUT', `Cannot decode ${label(input, what)}: it decodes to ${channels} channels (expected 1, 3 or 4)`);
  }
  return { data: pixels, width: info.width, height: info.height, channels };
}

/**
 * One input → one frame: raw frames are validated (and used in place), paths and encoded images
 * decoded. `what` names the input in messages.
 */
export async function decodeImage(input: ImageInput, options: DecodeOptions = {}, what = 'input'): Promise<Frame> {
  if (typeof options !== 'object' || options === null) throw invalidType('an options object', 'decodeImage(options)', options);
  const limit = checkLimitInputPixels(options.limitInputPixels);
  return decodeOne(input, limit, what);
}

async function decodeOne(input: unknown, limit: number, what: string): Promise<Frame> {
  if (typeof input === 'string' || input instanceof Uint8Array) return decodeEncoded(input, limit, what);
  if (isRawFrameLike(input)) return validateFrame(input, what === 'input' ? 'frame' : what);
  throw invalidType(INPUT_KINDS, what, input);
}

/**
 * Several inputs → frames, in order; at most `concurrency` decoded at once. Raw frames are all
 * validated before anything is decoded; the first failure rejects (in input order).
 */
export async function decodeImages(inputs: readonly ImageInput[], options: DecodeOptions = {}): Promise<Frame[]> {
  if (!Array.isArray(inputs)) throw invalidType('an array of images', 'inputs', inputs);
  if (typeof options !== 'object' || options === null) throw invalidType('an options object', 'decodeImages(options)', options);
  const limit = checkLimitInputPixels(options.limitInputPixels);
  const concurrency = checkConcurrency(options.concurrency);
  // Cheap checks first, so that a wrong argument is reported before any decoding work.
  inputs.forEach((input, k) => {
    if (isRawFrameLike(input)) validateFrame(input, `inputs[${k}]`);
    else if (typeof input !== 'string' && !(input instanceof Uint8Array)) throw invalidType(INPUT_KINDS, `inputs[${k}]`, input);
  });
  const results = new Array<Frame>(inputs.length);
  const errors = new Array<unknown>(inputs.length);
  let failed = false;
  let next = 0;
  const worker = async () => {
    while (!failed && next < inputs.length) {
      const k = next++;
      try {
        results[k] = await decodeOne(inputs[k], limit, `inputs[${k}]`);
      } catch (error) {
        errors[k] = error;
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, inputs.length) }, worker));
  if (failed) throw errors.find((e) => e !== undefined);
  return results;
}

/**
 * Draws faces on their image: a box per face, its landmarks (the five points as dots, the 68 as small
 * dots when present) and a label (the face's name, or its score), written as PNG, JPEG or WebP.
 *
 * ```ts
 * const faces = await engine.recognize('group.jpg', database);
 * await annotateImage('group.jpg', faces, 'group-annotated.jpg');
 * ```
 *
 * The image is decoded as the engine decodes it (EXIF orientation applied), so the engine's
 * coordinates fall on the right pixels; the drawing is one SVG overlay of the image's size composited
 * by sharp. Line widths and text sizes scale with the image.
 */
import * as path from 'node:path';
import sharp from 'sharp';
import { FaceError, FaceRangeError, invalidRange, invalidType } from '../errors';
import type { DetectedFace, Point } from './face-engine';
import { checkLimitInputPixels, decodeImage, type Frame, type RawFrame } from './image';

/** A face to draw: a detected face, with a name (recognize) or any label of the caller's. */
export type AnnotatedFace = Pick<DetectedFace, 'box' | 'score'> &
  Partial<Pick<DetectedFace, 'landmarks' | 'landmarks68'>> & {
    /** Drawn above the box (when no label); a face named 'Unknown' is drawn in `unknownColor`. */
    name?: string;
    /** Drawn above the box in place of the name or score. */
    label?: string;
    /** This face's colour (any SVG colour), in place of the default. */
    color?: string;
  };

export interface AnnotateOptions {
  /** Box and label colour (an SVG colour). Default '#00e676' (green). */
  color?: string;
  /** Colour of faces named 'Unknown'. Default '#ff1744' (red). */
  unknownColor?: string;
  /** Landmark dot colour. Default '#ffea00' (yellow). */
  landmarkColor?: string;
  /** Box line width in pixels. Default: from the image size (1 px per ~400 px of √(width·height), at least 1). */
  lineWidth?: number;
  /** Draw the landmarks. Default true. */
  landmarks?: boolean;
  /** Draw the labels (label, else name, else the score). Default true. */
  labels?: boolean;
  /** JPEG / WebP quality, 1–100. Default 90. */
  quality?: number;
  /** Refuse encoded images of more pixels than this (as FaceEngine). Default 100 000 000. */
  limitInputPixels?: number;
}

export interface AnnotateResult {
  path: string;
  width: number;
  height: number;
  format: 'png' | 'jpeg' | 'webp';
}

const FORMATS: Readonly<Record<string, AnnotateResult['format']>> = { '.png': 'png', '.jpg': 'jpeg', '.jpeg': 'jpeg', '.webp': 'webp' };
const OPTION_KEYS = ['color', 'unknownColor', 'landmarkColor', 'lineWidth', 'landmarks', 'labels', 'quality', 'limitInputPixels'];

/** The output format for a file name (by its extension), or undefined when not one of .png .jpg .jpeg .webp. */
export function annotationFormat(file: string): AnnotateResult['format'] | undefined {
  return FORMATS[path.extname(file).toLowerCase()];
}

/** Text for an SVG text node or attribute: XML's five entities; characters XML 1.0 forbids are dropped. */
export function escapeXml(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** An SVG colour given by the caller: refused when it could break out of the attribute. */
function checkColor(value: unknown, what: string, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string') throw invalidType("an SVG colour such as '#00e676' or 'red'", what, value);
  if (!/^(#[0-9a-fA-F]{3,8}|[a-zA-Z]+|(rgb|rgba|hsl|hsla)\([0-9.,%\s]+\))$/.test(value)) throw invalidRange("an SVG colour such as '#00e676', 'red' or 'rgb(0, 230, 118)'", what, value);
  return value;
}

function finite(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function checkPoints(value: unknown, what: string): Point[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalidType('an array of points { x, y }', what, value);
  value.forEach((p, k) => {
    if (typeof p !== 'object' || p === null || !finite((p as Point).x) || !finite((p as Point).y)) throw invalidType('a point { x, y } of finite numbers', `${what}[${k}]`, p);
  });
  return value as Point[];
}

function checkFaces(faces: unknown): AnnotatedFace[] {
  if (!Array.isArray(faces)) throw invalidType('an array of faces', 'faces', faces);
  faces.forEach((face, k) => {
    const what = `faces[${k}]`;
    if (typeof face !== 'object' || face === null) throw invalidType('a face { box, score }', what, face);
    const box = (face as AnnotatedFace).box;
    if (typeof box !== 'object' || box === null || ![box.x, box.y, box.width, box.height].every(finite)) {
      throw invalidType('a box { x, y, width, height } of finite numbers', `${what}.box`, box);
    }
    const f = face as AnnotatedFace;
    if (f.score !== undefined && !finite(f.score)) throw invalidType('a number', `${what}.score`, f.score);
    for (const key of ['name', 'label'] as const) if (f[key] !== undefined && typeof f[key] !== 'string') throw invalidType('a string', `${what}.${key}`, f[key]);
    checkPoints(f.landmarks, `${what}.landmarks`);
    checkPoints(f.landmarks68, `${what}.landmarks68`);
    if (f.color !== undefined) checkColor(f.color, `${what}.color`, '');
  });
  return faces as AnnotatedFace[];
}

function round(v: number): string {
  return String(Math.round(v * 10) / 10);
}

/** The SVG overlay (exported for tests and for callers that composite it themselves). */
export function annotationSvg(width: number, height: number, faces: readonly AnnotatedFace[], options: AnnotateOptions = {}): string {
  const color = checkColor(options.color, 'options.color', '#00e676');
  const unknownColor = checkColor(options.unknownColor, 'options.unknownColor', '#ff1744');
  const landmarkColor = checkColor(options.landmarkColor, 'options.landmarkColor', '#ffea00');
  const lw = options.lineWidth ?? Math.max(1, Math.round(Math.sqrt(width * height) / 400));
  const drawLandmarks = options.landmarks ?? true;
  const drawLabels = options.labels ?? true;
  const fontSize = Math.max(10, Math.round(Math.sqrt(width * height) / 60));
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`];
  for (const face of faces) {
    const c = face.color ?? (face.name === 'Unknown' ? unknownColor : color);
    const { x, y, width: w, height: h } = face.box;
    parts.push(`<rect x="${round(x)}" y="${round(y)}" width="${round(w)}" height="${round(h)}" fill="none" stroke="${c}" stroke-width="${lw}" shape-rendering="crispEdges"/>`);
    if (drawLandmarks) {
      for (const p of face.landmarks68 ?? []) parts.push(`<circle cx="${round(p.x)}" cy="${round(p.y)}" r="${round(Math.max(1, lw * 0.6))}" fill="${landmarkColor}" fill-opacity="0.8"/>`);
      for (const p of face.landmarks ?? []) parts.push(`<circle cx="${round(p.x)}" cy="${round(p.y)}" r="${round(Math.max(1.5, lw * 1.5))}" fill="${c}" stroke="#000" stroke-width="${round(Math.max(0.5, lw / 3))}"/>`);
    }
    if (drawLabels) {
      const text = face.label ?? face.name ?? (finite(face.score) ? face.score.toFixed(2) : '');
      if (text !== '') {
        // Above the box, or inside its top edge when there is no room above.
        const pad = Math.max(2, Math.round(fontSize / 5));
        const boxH = fontSize + 2 * pad;
        const textW = Math.ceil([...text].length * fontSize * 0.62) + 2 * pad;
        const top = y - lw / 2 - boxH >= 0 ? y - lw / 2 - boxH : Math.max(0, y + lw / 2);
        const left = Math.min(Math.max(0, x - lw / 2), Math.max(0, width - textW));
        parts.push(`<rect x="${round(left)}" y="${round(top)}" width="${textW}" height="${boxH}" fill="${c}" fill-opacity="0.85"/>`);
        parts.push(
          `<text x="${round(left + pad)}" y="${round(top + pad + fontSize * 0.82)}" font-family="DejaVu Sans, Arial, sans-serif" font-size="${fontSize}" fill="#000">${escapeXml(text)}</text>`,
        );
      }
    }
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/**
 * Draws `faces` on the image `input` and writes it to `outPath`, in the format of its extension
 * (.png, .jpg/.jpeg, .webp). `input` is what FaceEngine takes: a file path, an encoded image, or a
 * raw frame (drawn as it is, e.g. the frame the engine was given).
 *
 * @throws FaceTypeError / FaceRangeError (E_INPUT) for wrong arguments or an unsupported extension;
 *   FaceError E_INPUT when the image cannot be decoded or the file cannot be written
 */
export async function annotateImage(input: string | Uint8Array | RawFrame, faces: readonly AnnotatedFace[], outPath: string, options: AnnotateOptions = {}): Promise<AnnotateResult> {
  if (typeof outPath !== 'string' || outPath === '') throw invalidType('an output file path', 'outPath', outPath);
  const format = annotationFormat(outPath);
  if (!format) throw invalidRange('a file name ending in .png, .jpg, .jpeg or .webp', 'outPath', outPath);
  if (typeof options !== 'object' || options === null) throw invalidType('an options object', 'annotateImage(options)', options);
  for (const key of Object.keys(options)) if (!OPTION_KEYS.includes(key)) throw new FaceRangeError(`Expected only the options ${OPTION_KEYS.join(', ')} for annotateImage(options) but received an unknown option '${key}'`);
  if (options.lineWidth !== undefined && !(finite(options.lineWidth) && options.lineWidth > 0)) throw invalidRange('a positive number (pixels)', 'options.lineWidth', options.lineWidth);
  const quality = options.quality ?? 90;
  if (!(Number.isInteger(quality) && quality >= 1 && quality <= 100)) throw invalidRange('an integer from 1 to 100', 'options.quality', quality);
  const checked = checkFaces(faces);
  const limitInputPixels = checkLimitInputPixels(options.limitInputPixels);

  // The engine's own decoding: same orientation, same pixels as the coordinates refer to.
  const frame: Frame = await decodeImage(input, { limitInputPixels }, 'input');
  const { width, height } = frame;
  const svg = annotationSvg(width, height, checked, options);

  let image = sharp(frame.data, { raw: { width, height, channels: frame.channels }, limitInputPixels: false });
  if (frame.channels === 1) image = image.toColourspace('srgb');
  image = image.composite([{ input: Buffer.from(svg), top: 0, left: 0 }]);
  if (format === 'png') image = image.png();
  else if (format === 'jpeg') image = image.flatten({ background: '#ffffff' }).jpeg({ quality });
  else image = image.webp({ quality });
  try {
    await image.toFile(outPath);
  } catch (cause) {
    throw new FaceError('E_INPUT', `Cannot write the annotated image '${outPath}': ${(cause as Error).message}`, { cause });
  }
  return { path: outPath, width, height, format };
}

/**
 * ROC charts: FAR on a log axis from 1e-4 to 1, TAR linear from 0 to 1. The chart is drawn as SVG and
 * rasterised to PNG by sharp (librsvg); text needs a system font, and is simply missing without one.
 */
import * as fs from 'node:fs';
import sharp from 'sharp';
import { FaceError, invalidRange, invalidType } from '../errors';

export interface RocCurve {
  far: ArrayLike<number>;
  tar: ArrayLike<number>;
  /** Shown in the legend when given. */
  label?: string;
}

export interface RocPngOptions {
  /** Pixels; default 640 × 480. */
  width?: number;
  height?: number;
  title?: string;
  /** Also write the PNG here. */
  path?: string;
}

const FAR_MIN_EXP = -4;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

function checkSize(value: unknown, what: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw invalidType('an integer', what, value);
  if (value < 160 || value > 8192) throw invalidRange('an integer from 160 to 8192', what, value);
  return value;
}

function checkCurves(points: RocCurve | RocCurve[]): RocCurve[] {
  const curves = Array.isArray(points) ? points : [points];
  if (curves.length === 0) throw invalidRange('at least one curve', 'points', points);
  curves.forEach((curve, c) => {
    const what = Array.isArray(points) ? `points[${c}]` : 'points';
    if (typeof curve !== 'object' || curve === null) throw invalidType('{ far, tar }', what, curve);
    const { far, tar } = curve;
    const isList = (v: unknown) => Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
    if (!isList(far)) throw invalidType('an array of numbers', `${what}.far`, far);
    if (!isList(tar)) throw invalidType('an array of numbers', `${what}.tar`, tar);
    if (far.length !== tar.length) throw invalidRange(`an array of ${far.length} numbers (as far)`, `${what}.tar`, tar);
    for (let i = 0; i < far.length; i++) {
      if (typeof far[i] !== 'number' || !(far[i] >= 0 && far[i] <= 1)) throw invalidRange('numbers in [0, 1]', `${what}.far[${i}]`, far[i]);
      if (typeof tar[i] !== 'number' || !(tar[i] >= 0 && tar[i] <= 1)) throw invalidRange('numbers in [0, 1]', `${what}.tar[${i}]`, tar[i]);
    }
    if (curve.label !== undefined && typeof curve.label !== 'string') throw invalidType('a string', `${what}.label`, curve.label);
  });
  return curves;
}

/** The chart as an SVG document. */
export function rocSvg(points: RocCurve | RocCurve[], options: Omit<RocPngOptions, 'path'> = {}): string {
  const curves = checkCurves(points);
  if (typeof options !== 'object' || options === null) throw invalidType('an object', 'options', options);
  const width = checkSize(options.width, 'options.width', 640);
  const height = checkSize(options.height, 'options.height', 480);
  if (options.title !== undefined && typeof options.title !== 'string') throw invalidType('a string', 'options.title', options.title);

  const font = Math.max(10, Math.round(Math.min(width, height) / 40));
  const left = font * 4.5, right = font * 1.5, top = font * (options.title ? 3 : 1.5), bottom = font * 3.5;
  const plotW = width - left - right, plotH = height - top - bottom;
  // FAR below 1e-4 (including 0) sits on the left edge.
  const xOf = (far: number) => left + ((Math.log10(Math.max(far, 10 ** FAR_MIN_EXP)) - FAR_MIN_EXP) / -FAR_MIN_EXP) * plotW;
  const yOf = (tar: number) => top + (1 - tar) * plotH;
  const n = (v: number) => v.toFixed(2);

  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`);
  parts.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  // Grid: every decade (and its 2..9 multiples, lighter) on FAR, every 0.1 on TAR.
  for (let e = FAR_MIN_EXP; e <= 0; e++) {
    const x = xOf(10 ** e);
    parts.push(`<line x1="${n(x)}" y1="${n(top)}" x2="${n(x)}" y2="${n(top + plotH)}" stroke="#b0b0b0" stroke-width="1"/>`);
    parts.push(`<text x="${n(x)}" y="${n(top + plotH + font * 1.3)}" font-size="${font}" text-anchor="middle" font-family="sans-serif">${e === 0 ? '1' : e === -1 ? '0.1' : `1e${e}`}</text>`);
    if (e < 0) {
      for (let m = 2; m <= 9; m++) {
        const xm = xOf(m * 10 ** e);
        parts.push(`<line x1="${n(xm)}" y1="${n(top)}" x2="${n(xm)}" y2="${n(top + plotH)}" stroke="#e6e6e6" stroke-width="1"/>`);
      }
    }
  }
  for (let k = 0; k <= 10; k++) {
    const y = yOf(k / 10);
    parts.push(`<line x1="${n(left)}" y1="${n(y)}" x2="${n(left + plotW)}" y2="${n(y)}" stroke="${k % 5 === 0 ? '#b0b0b0' : '#e6e6e6'}" stroke-width="1"/>`);
    parts.push(`<text x="${n(left - font * 0.4)}" y="${n(y + font * 0.35)}" font-size="${font}" text-anchor="end" font-family="sans-serif">${(k / 10).toFixed(1)}</text>`);
  }
  parts.push(`<rect x="${n(left)}" y="${n(top)}" width="${n(plotW)}" height="${n(plotH)}" fill="none" stroke="#000000" stroke-width="1.5"/>`);
  parts.push(`<text x="${n(left + plotW / 2)}" y="${n(height - font * 0.6)}" font-size="${font}" text-anchor="middle" font-family="sans-serif">FAR (false accept rate)</text>`);
  parts.push(`<text x="${n(font * 1.2)}" y="${n(top + plotH / 2)}" font-size="${font}" text-anchor="middle" font-family="sans-serif" transform="rotate(-90 ${n(font * 1.2)} ${n(top + plotH / 2)})">TAR (true accept rate)</text>`);
  if (options.title) {
    parts.push(`<text x="${n(width / 2)}" y="${n(font * 1.9)}" font-size="${Math.round(font * 1.2)}" text-anchor="middle" font-family="sans-serif">${escapeXml(options.title)}</text>`);
  }
  curves.forEach((curve, c) => {
    const color = COLORS[c % COLORS.length];
    const coords: string[] = [];
    for (let i = 0; i < curve.far.length; i++) coords.push(`${n(xOf(curve.far[i]))},${n(yOf(curve.tar[i]))}`);
    parts.push(`<polyline points="${coords.join(' ')}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"/>`);
    if (curve.label) {
      const y = top + plotH - font * (1 + 1.4 * (curves.length - 1 - c));
      const x = left + plotW - font * 12;
      parts.push(`<line x1="${n(x)}" y1="${n(y - font * 0.35)}" x2="${n(x + font * 1.5)}" y2="${n(y - font * 0.35)}" stroke="${color}" stroke-width="2"/>`);
      parts.push(`<text x="${n(x + font * 2)}" y="${n(y)}" font-size="${font}" font-family="sans-serif">${escapeXml(curve.label)}</text>`);
    }
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** The chart as a PNG of exactly width × height (written to options.path too when given). */
export async function rocPng(points: RocCurve | RocCurve[], options: RocPngOptions = {}): Promise<Buffer> {
  const svg = rocSvg(points, options);
  if (options.path !== undefined && (typeof options.path !== 'string' || options.path === '')) throw invalidType('a file path', 'options.path', options.path);
  const width = checkSize(options.width, 'options.width', 640);
  const height = checkSize(options.height, 'options.height', 480);
  let png: Buffer;
  try {
    // density 72: one SVG unit = one pixel; resize guards against any rounding by librsvg.
    png = await sharp(Buffer.from(svg), { density: 72 }).resize(width, height, { fit: 'fill' }).flatten({ background: '#ffffff' }).png().toBuffer();
  } catch (error) {
    throw new FaceError('E_INTERNAL', `Cannot render the ROC chart: ${(error as Error).message}`, { cause: error });
  }
  if (options.path !== undefined) {
    try {
      await fs.promises.writeFile(options.path, png);
    } catch (error) {
      throw new FaceError('E_INPUT', `Cannot write ${options.path}: ${(error as Error).message}`, { cause: error });
    }
  }
  return png;
}

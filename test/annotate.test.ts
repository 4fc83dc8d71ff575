// annotateImage: boxes, landmarks and labels drawn on the image (as displayed: EXIF orientation
// applied), written as PNG / JPEG / WebP, with names escaped in the SVG.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { annotateImage, annotationSvg, escapeXml, type AnnotatedFace } from '../lib/pipeline/annotate';
import type { RawFrame } from '../lib/pipeline/image';
import { expectRejects } from './helpers/assertions';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'facesight-annotate-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const W = 200;
const H = 150;
const GREY = 128;

/** A uniform grey RGB frame. */
function greyFrame(width = W, height = H, channels: 1 | 3 = 3): RawFrame {
  return { data: new Uint8Array(width * height * channels).fill(GREY), width, height, channels };
}

const FACE: AnnotatedFace = {
  box: { x: 50, y: 60, width: 60, height: 50 },
  score: 0.987,
  landmarks: [
    { x: 65, y: 75 },
    { x: 95, y: 75 },
    { x: 80, y: 85 },
    { x: 68, y: 98 },
    { x: 92, y: 98 },
  ],
};

async function pixels(file: string): Promise<{ data: Buffer; width: number; height: number; channels: number; format: string }> {
  const meta = await sharp(file).metadata();
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels, format: meta.format! };
}

function changed(img: { data: Buffer; width: number; channels: number }, x: number, y: number): boolean {
  const i = (y * img.width + x) * img.channels;
  return [0, 1, 2].some((c) => Math.abs(img.data[i + c] - GREY) > 8);
}

/** Changed at (x, y) or a pixel next to it (a 1-pixel line falls on one side of a whole coordinate). */
function near(img: { data: Buffer; width: number; channels: number }, x: number, y: number): boolean {
  for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) if (changed(img, x + dx, y + dy)) return true;
  return false;
}

t.test('invalid input', async (t) => {
  const out = path.join(dir, 'never.png');
  await expectRejects(t, annotateImage(greyFrame(), [FACE], path.join(dir, 'out.gif')), 'E_INPUT', /^Expected a file name ending in \.png, \.jpg, \.jpeg or \.webp for outPath but received ".*out\.gif"$/, 'unsupported extension', RangeError);
  await expectRejects(t, annotateImage(greyFrame(), [FACE], 42 as unknown as string), 'E_INPUT', /^Expected an output file path for outPath but received number 42$/, 'outPath not a string', TypeError);
  await expectRejects(t, annotateImage(greyFrame(), {} as unknown as AnnotatedFace[], out), 'E_INPUT', /^Expected an array of faces for faces but received an object \(Object\)$/, 'faces not an array', TypeError);
  await expectRejects(t, annotateImage(greyFrame(), [{ ...FACE, box: { x: 1, y: NaN, width: 2, height: 2 } }], out), 'E_INPUT', /^Expected a box \{ x, y, width, height \} of finite numbers for faces\[0\]\.box/, 'a box with NaN', TypeError);
  await expectRejects(t, annotateImage(greyFrame(), [{ ...FACE, landmarks: [{ x: 1 }] as unknown as AnnotatedFace['landmarks'] }], out), 'E_INPUT', /^Expected a point \{ x, y \} of finite numbers for faces\[0\]\.landmarks\[0\]/, 'a landmark without y', TypeError);
  await expectRejects(t, annotateImage(greyFrame(), [{ ...FACE, name: 7 as unknown as string }], out), 'E_INPUT', /^Expected a string for faces\[0\]\.name but received number 7$/, 'a name that is not a string', TypeError);
  await expectRejects(t, annotateImage(greyFrame(), [FACE], out, { color: 'red" onload="x' }), 'E_INPUT', /^Expected an SVG colour .* for options\.color but received/, 'a colour that would break the attribute', RangeError);
  await expectRejects(t, annotateImage(greyFrame(), [FACE], out, { lineWidth: 0 }), 'E_INPUT', /^Expected a positive number \(pixels\) for options\.lineWidth but received number 0$/, 'line width 0', RangeError);
  await expectRejects(t, annotateImage(greyFrame(), [FACE], out, { quality: 101 }), 'E_INPUT', /^Expected an integer from 1 to 100 for options\.quality but received number 101$/, 'quality 101', RangeError);
  await expectRejects(t, annotateImage(greyFrame(), [FACE], out, { colour: 'red' } as never), 'E_INPUT', /^Expected only the options .* but received an unknown option 'colour'$/, 'unknown option', RangeError);
  await expectRejects(t, annotateImage(Buffer.from('not an image'), [FACE], out), 'E_INPUT', /^Cannot decode input \(Buffer of length 12\)/, 'bytes that are no image');
  await expectRejects(t, annotateImage(path.join(dir, 'absent.jpg'), [FACE], out), 'E_INPUT', /^Cannot read image file '.*absent\.jpg'/, 'a file that does not exist');
  await expectRejects(t, annotateImage({ data: new Uint8Array(10), width: 4, height: 4, channels: 3 }, [FACE], out), 'E_INPUT', /^Expected 48 bytes \(4×4×3\) for frame\.data but received 10$/, 'a raw frame of the wrong length', RangeError);
  await expectRejects(t, annotateImage(greyFrame(), [FACE], path.join(dir, 'no-such-folder', 'out.png')), 'E_INPUT', /^Cannot write the annotated image '.*out\.png'/, 'a folder that does not exist');
  t.notOk(fs.existsSync(out), 'nothing written');
});

t.test('draws on the box outline, not far from it; keeps the size', async (t) => {
  const out = path.join(dir, 'grey.png');
  const result = await annotateImage(greyFrame(), [{ ...FACE, name: 'Ada' }], out);
  t.same(result, { path: out, width: W, height: H, format: 'png' }, 'the result describes the file');
  const img = await pixels(out);
  t.same([img.width, img.height, img.format], [W, H, 'png'], "the input's size, PNG");
  const { x, y, width, height } = FACE.box;
  t.ok(near(img, x, y + height / 2), 'left edge drawn');
  t.ok(near(img, x + width, y + 30), 'right edge drawn');
  t.ok(near(img, x + width / 2, y + height), 'bottom edge drawn');
  t.ok(near(img, x + 20, y), 'top edge drawn');
  t.ok(changed(img, 65, 75) && changed(img, 92, 98), 'landmarks drawn');
  t.ok(changed(img, x + 4, y - 8), 'the label above the box');
  t.notOk(changed(img, x + 10, y + 42), 'inside the box, away from the landmarks: untouched');
  for (const [px, py] of [[5, 5], [W - 5, H - 5], [W - 20, 20], [10, H - 10], [x + width + 20, y + height / 2]]) {
    t.notOk(changed(img, px, py), `far from the face (${px}, ${py}): untouched`);
  }

  // The unknown colour for 'Unknown', the default for a name.
  const red = path.join(dir, 'unknown.png');
  await annotateImage(greyFrame(), [{ ...FACE, name: 'Unknown' }], red, { landmarks: false, labels: false });
  const r = await pixels(red);
  const red1 = [x - 1, x].some((px) => {
    const i = ((y + 20) * W + px) * 3;
    return r.data[i] > 200 && r.data[i + 1] < 80;
  });
  t.ok(red1, "'Unknown' in red");
  t.notOk(changed(r, 65, 75), 'landmarks: false draws none');
  t.notOk(changed(r, x + 4, y - 8), 'labels: false draws none');
});

t.test('68 landmarks as small dots', async (t) => {
  const landmarks68 = Array.from({ length: 68 }, (_, k) => ({ x: 55 + (k % 17) * 3, y: 65 + Math.floor(k / 17) * 10 }));
  const out = path.join(dir, 'dots.png');
  await annotateImage(greyFrame(), [{ ...FACE, landmarks: [], landmarks68 }], out, { labels: false });
  const img = await pixels(out);
  t.ok(landmarks68.filter((p) => changed(img, p.x, p.y)).length >= 60, 'the 68 points drawn');
});

t.test('names with XML characters', async (t) => {
  t.equal(escapeXml(`<&>"'`), '&lt;&amp;&gt;&quot;&apos;', 'the five entities');
  t.equal(escapeXml('a\u0000b\u0007c\td'), 'abc\td', 'characters XML forbids are dropped');
  const name = 'Tom <&> "Jerry" </text><script>x</script>';
  const svg = annotationSvg(W, H, [{ ...FACE, name }]);
  t.notOk(svg.includes('<script>'), 'no markup from the name in the SVG');
  t.ok(svg.includes('Tom &lt;&amp;&gt; &quot;Jerry&quot; &lt;/text&gt;'), 'the name escaped');
  const out = path.join(dir, 'xml.png');
  await annotateImage(greyFrame(), [{ ...FACE, name }, { ...FACE, box: { x: 120, y: 20, width: 40, height: 40 }, label: 'a\u0001<b>&amp;' }], out);
  const img = await pixels(out);
  t.same([img.width, img.height], [W, H], 'written');
  t.ok(changed(img, FACE.box.x + 4, FACE.box.y - 8), 'the label drawn');
});

t.test('EXIF orientation, grey input, JPEG and WebP output, line width', async (t) => {
  // 200 × 100 stored, orientation 6 (turn 90° clockwise to display): 100 × 200 as displayed.
  const stored = await sharp({ create: { width: 200, height: 100, channels: 3, background: { r: GREY, g: GREY, b: GREY } } })
    .jpeg()
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const out = path.join(dir, 'turned.jpg');
  const result = await annotateImage(stored, [{ box: { x: 20, y: 120, width: 50, height: 60 }, score: 0.9 }], out);
  t.same([result.width, result.height, result.format], [100, 200, 'jpeg'], 'the displayed size');
  const img = await pixels(out);
  t.same([img.width, img.height, img.format], [100, 200, 'jpeg'], 'a JPEG of the displayed size');
  t.ok(near(img, 20, 150), 'the box where the coordinates say (displayed orientation)');

  const grey = path.join(dir, 'grey.webp');
  await annotateImage(greyFrame(W, H, 1), [FACE], grey);
  const g = await pixels(grey);
  t.same([g.width, g.height, g.format, g.channels], [W, H, 'webp', 3], 'a grey frame: a colour WebP of its size');
  t.ok(near(g, FACE.box.x, FACE.box.y + 25), 'box drawn in colour');

  const stroke = (svg: string) => Number(/stroke-width="([\d.]+)"/.exec(svg)![1]);
  t.ok(stroke(annotationSvg(4000, 3000, [FACE])) > stroke(annotationSvg(400, 300, [FACE])), 'lines thicker on larger images');
  t.equal(stroke(annotationSvg(400, 300, [FACE], { lineWidth: 7 })), 7, 'options.lineWidth');
});

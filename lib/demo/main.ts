#!/usr/bin/env node
/**
 * `npm run demo`: enrol a gallery, recognise query images, draw the results. Nothing but what
 * `npm install` brings: the models and sample photos of @vladmandic/face-api.
 *
 * Those sample photos (demo/sample1.jpg … sample6.jpg) are six group photos, 22 faces, with no names:
 * no person is known to appear in two of them. So the demo
 * 1. enrols everyone in sample1–3 (9 people), named by photo and position: sample1-1 is the leftmost
 *    face of sample1.jpg;
 * 2. recognises, as queries, (a) sample1–3 mirrored and shrunk to 60 %: new pixels of the same
 *    people, each face of which must come back with its own name, and (b) sample4–6, people who are
 *    not enrolled as far as anyone knows (no ground truth: a name there is a claim to check by eye);
 * 3. writes every query and gallery photo with boxes, landmarks and names to demo-output/
 *    (FACESIGHT_DEMO_OUT to change), and prints a table.
 *
 * Your own photos: FACESIGHT_DEMO_GALLERY=folder (folder/Name/*.jpg or folder/Name_1.jpg) and
 * FACESIGHT_DEMO_QUERIES=folder-or-image enrol and recognise those instead.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { table } from '../cli/command';
import { faceApiModelDir } from '../convert/faceapi';
import { annotateImage } from '../pipeline/annotate';
import { FaceDatabase } from '../pipeline/database';
import { FaceEngine, type DetectedFace, type RecognizedFace } from '../pipeline/face-engine';
import { decodeImage, type Frame } from '../pipeline/image';

const MIRROR_SCALE = 0.6;

interface Query {
  /** Shown in the table and used for the output file name. */
  label: string;
  frame: Frame;
  /** Per face (matched by box), the name it must get; undefined where there is no ground truth. */
  expected?: (face: DetectedFace) => string | undefined;
}

function samplePhoto(n: number): string {
  return path.join(faceApiModelDir(), '..', 'demo', `sample${n}.jpg`);
}

function iou(a: DetectedFace['box'], b: DetectedFace['box']): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (a.width * a.height + b.width * b.height - inter);
}

/** The photo mirrored and shrunk, as a raw frame (what the engine takes as it is). */
async function mirrored(frame: Frame, scale: number): Promise<Frame> {
  const { data, info } = await sharp(frame.data, { raw: { width: frame.width, height: frame.height, channels: frame.channels } })
    .flop()
    .resize({ width: Math.round(frame.width * scale) })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels as Frame['channels'] };
}

function fmt(n: number): string {
  return Number.isFinite(n) ? n.toFixed(3) : '-';
}

async function main(): Promise<void> {
  const started = performance.now();
  const out = path.resolve(process.env.FACESIGHT_DEMO_OUT ?? 'demo-output');
  fs.mkdirSync(out, { recursive: true });
  console.log(`facesight demo: ${os.cpus()[0]?.model ?? 'cpu'}, ${os.availableParallelism()} threads`);

  const engine = await FaceEngine.create();
  const embedder = engine.embedder!;
  console.log(`engine: ${engine.models.detector.name} → ${engine.models.landmarks?.name ?? '-'} → ${embedder.name} (${embedder.size}-d, ${engine.alignment} alignment), ${((performance.now() - started) / 1000).toFixed(1)} s to load`);

  let database: FaceDatabase;
  let queries: Query[];
  const galleryAnnotations: { label: string; frame: Frame; faces: (DetectedFace & { name: string })[] }[] = [];
  try {
    if (process.env.FACESIGHT_DEMO_GALLERY) {
      ({ database, queries } = await ownPhotos(engine, process.env.FACESIGHT_DEMO_GALLERY, process.env.FACESIGHT_DEMO_QUERIES));
    } else {
      // 1. The gallery: every face of sample1–3, named by photo and position (left to right).
      const t0 = performance.now();
      const photos = [1, 2, 3].map(samplePhoto);
      const frames = await Promise.all(photos.map((p) => decodeImage(p)));
      const embedded = await engine.embed(frames);
      database = new FaceDatabase({ embedder: embedder.name, threshold: embedder.threshold ?? undefined, dim: embedder.size });
      const enrolled: { name: string; box: DetectedFace['box'] }[][] = [];
      embedded.forEach((faces, i) => {
        const byX = [...faces].sort((a, b) => a.box.x - b.box.x);
        const named = byX.map((f, k) => ({ ...f, name: `sample${i + 1}-${k + 1}` }));
        for (const f of named) database.add(f.name, f.embedding);
        enrolled.push(named.map((f) => ({ name: f.name, box: f.box })));
        galleryAnnotations.push({ label: `gallery-sample${i + 1}`, frame: frames[i], faces: named });
      });
      console.log(`\n1. Gallery: ${database.size} people enrolled from ${photos.map((p) => path.basename(p)).join(', ')} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

      // 2. The queries: the gallery photos mirrored and shrunk (known answers), and sample4–6.
      queries = [];
      for (let i = 0; i < 3; i++) {
        const frame = await mirrored(frames[i], MIRROR_SCALE);
        const width = frames[i].width;
        // Where each enrolled face lands in the mirrored, shrunk photo.
        const moved = enrolled[i].map((e) => ({
          name: e.name,
          box: { x: (width - e.box.x - e.box.width) * (frame.width / width), y: e.box.y * (frame.height / frames[i].height), width: e.box.width * (frame.width / width), height: e.box.height * (frame.height / frames[i].height) },
        }));
        queries.push({
          label: `sample${i + 1}-mirrored`,
          frame,
          expected: (face) => {
            const best = moved.reduce((b, m) => (iou(m.box, face.box) > iou(b.box, face.box) ? m : b), moved[0]);
            return best && iou(best.box, face.box) >= 0.5 ? best.name : undefined;
          },
        });
      }
      for (const n of [4, 5, 6]) queries.push({ label: `sample${n}`, frame: await decodeImage(samplePhoto(n)) });
    }

    // 3. Recognise every query in one call.
    const t1 = performance.now();
    const results: RecognizedFace[][] = await engine.recognize(queries.map((q) => q.frame), database);
    const seconds = (performance.now() - t1) / 1000;
    const threshold = database.threshold ?? embedder.threshold;
    console.log(`\n2. Queries: ${queries.length} images, ${results.flat().length} faces recognised in ${seconds.toFixed(1)} s (threshold ${threshold}: the nearest name when its distance is at most that, else Unknown)`);

    const withCheck = queries.some((q) => q.expected);
    const rows: string[][] = [['QUERY', 'FACE', 'NAME', 'DISTANCE', 'NEXT NEAREST', ...(withCheck ? ['CHECK'] : [])]];
    let right = 0;
    let checked = 0;
    results.forEach((faces, i) => {
      const q = queries[i];
      [...faces]
        .sort((a, b) => a.box.x - b.box.x)
        .forEach((f, k) => {
          const sorted = [...f.distances].map((d, j) => ({ d, j })).sort((a, b) => a.d - b.d);
          const entries = [...database.entries()];
          const next = sorted[1] ? `${entries[sorted[1].j].name} ${fmt(sorted[1].d)}` : '-';
          const expected = q.expected?.(f);
          let check = q.expected ? 'no match in the gallery photo' : 'no ground truth';
          if (expected !== undefined) {
            checked++;
            const ok = f.name === expected;
            if (ok) right++;
            check = ok ? 'right' : `WRONG: is ${expected}`;
          }
          rows.push([k === 0 ? q.label : '', String(k + 1), f.name, fmt(f.distance), next, ...(withCheck ? [check] : [])]);
        });
      if (faces.length === 0) rows.push([q.label, '-', 'no face', '', '', ...(withCheck ? [''] : [])]);
    });
    console.log(table(rows));
    if (checked) console.log(`\nGallery faces found again in the mirrored, shrunk photos: ${right} of ${checked} named right.`);
    const strangers = results.flatMap((faces, i) => (queries[i].expected ? [] : faces));
    if (strangers.length && !process.env.FACESIGHT_DEMO_GALLERY) {
      const named = strangers.filter((f) => f.name !== 'Unknown').length;
      console.log(
        `sample4–6 (not enrolled): ${named} of ${strangers.length} faces within the threshold of a gallery face, ${strangers.length - named} Unknown. ` +
          'No one knows whether any of them is in the gallery: compare the faces in the annotated images.',
      );
    }

    // 4. The pictures.
    const t2 = performance.now();
    const written: string[] = [];
    for (const [i, q] of queries.entries()) {
      const file = path.join(out, `${q.label}.jpg`);
      await annotateImage(q.frame, results[i].map((f) => ({ ...f, label: f.name === 'Unknown' ? 'Unknown' : `${f.name} ${f.distance.toFixed(2)}` })), file);
      written.push(file);
    }
    for (const g of galleryAnnotations) {
      const file = path.join(out, `${g.label}.jpg`);
      await annotateImage(g.frame, g.faces, file);
      written.push(file);
    }
    console.log(`\n3. Annotated images (${((performance.now() - t2) / 1000).toFixed(1)} s): ${written.length} in ${out}${path.sep}`);
    for (const f of written) console.log(`   ${path.basename(f)}`);
  } finally {
    engine.dispose();
  }
  console.log(`\nDone in ${((performance.now() - started) / 1000).toFixed(1)} s. The same from the command line:`);
  console.log('  facesight encode <gallery-folder> --db faces.npy');
  console.log('  facesight recognize <photos> --db faces.npy --annotate out/');
}

/** FACESIGHT_DEMO_GALLERY / FACESIGHT_DEMO_QUERIES: enrol a folder, recognise a folder or an image. */
async function ownPhotos(engine: FaceEngine, gallery: string, queriesArg: string | undefined): Promise<{ database: FaceDatabase; queries: Query[] }> {
  const t0 = performance.now();
  const database = await FaceDatabase.fromDirectory(gallery, engine);
  const report = database.report!;
  console.log(`\n1. Gallery ${gallery}: ${database.names().length} people, ${database.size} entries in ${((performance.now() - t0) / 1000).toFixed(1)} s` + (report.noFace.length ? `; no face in ${report.noFace.length} image(s)` : '') + (report.failed.length ? `; ${report.failed.length} could not be read` : ''));
  if (!queriesArg) throw new Error('FACESIGHT_DEMO_QUERIES: set it to a folder or an image to recognise');
  const files = fs.statSync(queriesArg).isDirectory()
    ? fs.readdirSync(queriesArg).filter((f) => /\.(jpe?g|png|webp|bmp|tiff?)$/i.test(f)).sort().map((f) => path.join(queriesArg, f))
    : [queriesArg];
  const queries: Query[] = [];
  for (const f of files) queries.push({ label: path.parse(f).name, frame: await decodeImage(f) });
  return { database, queries };
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

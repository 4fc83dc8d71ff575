// Runs face-api's SSD (the tfjs oracle, ~9 s a photo on the CPU backend) on photos, split over two
// worker threads; results in the order of `files`.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { SsdPhotoResult } from './faceapi-ssd-worker';

export async function runFaceApiSsd(manifest: string, files: readonly string[]): Promise<SsdPhotoResult[]> {
  const groups = [files.filter((_, i) => i % 2 === 0), files.filter((_, i) => i % 2 === 1)].filter((g) => g.length > 0);
  const results = await Promise.all(
    groups.map(
      (group) =>
        new Promise<SsdPhotoResult[]>((resolve, reject) => {
          const worker = new Worker(path.join(__dirname, 'faceapi-ssd-worker.ts'), { workerData: { manifest, files: group } });
          worker.once('message', (message: SsdPhotoResult[] | { error: string }) => {
            void worker.terminate();
            if ('error' in message) reject(new Error(message.error));
            else resolve(message);
          });
          worker.once('error', reject);
          worker.once('exit', (code) => reject(new Error(`the face-api worker exited with code ${code}`)));
        }),
    ),
  );
  const byFile = new Map(results.flat().map((r) => [r.file, r]));
  return files.map((f) => byFile.get(f)!);
}

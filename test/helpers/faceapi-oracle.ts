// The original face-api networks, run by TensorFlow.js's pure-JS CPU backend: the oracle of the
// face-api converters.
//
// @vladmandic/face-api's Node bundles either need tfjs-node (native, downloads at install) or
// `face-api.node-wasm.js`, which is the same code on plain @tensorflow/tfjs plus a re-export of
// @tensorflow/tfjs-backend-wasm. We load the latter with that one module stubbed as an empty object
// (it is only re-exported, never called, when the 'cpu' backend is selected), so the networks run on
// @tensorflow/tfjs (a devDependency) with tf.setBackend('cpu').
//
// Weights are loaded the way tfjs loads a manifest (each group's shards concatenated in order,
// decoded by tf.io.decodeWeights), reading the files directly: nothing of facesight's reader is used.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Module from 'node:module';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Tf = any;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type FaceApi = any;

let loaded: Promise<FaceApi> | undefined;

/** face-api (with `.tf`), on tfjs's CPU backend. */
export function faceApi(): Promise<FaceApi> {
  loaded ??= (async () => {
    const M = Module as unknown as { _load: (request: string, parent: unknown, isMain: boolean) => unknown };
    const original = M._load;
    M._load = function (request: string, parent: unknown, isMain: boolean) {
      if (request === '@tensorflow/tfjs-backend-wasm') return {};
      return original.call(this, request, parent, isMain);
    };
    let api: FaceApi;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      api = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
    } finally {
      M._load = original;
    }
    const tf = api.tf;
    // Silence tfjs's "install tfjs-node" banner: it is printed once, on the first kernel run.
    const warn = console.warn;
    console.warn = () => undefined;
    try {
      await tf.setBackend('cpu');
      await tf.ready();
      tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(1)).dataSync());
    } finally {
      console.warn = warn;
    }
    if (tf.getBackend() !== 'cpu') throw new Error(`tfjs backend is ${tf.getBackend()}, expected cpu`);
    return api;
  })();
  return loaded;
}

/** tfjs's own decoding of a manifest (one map for all groups). */
export function tfjsDecode(tf: Tf, manifestPath: string): Record<string, { dataSync(): Float32Array | Int32Array; shape: number[]; dtype: string }> {
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as { paths: string[]; weights: unknown[] }[];
  const out = {};
  for (const group of manifest) {
    const parts = group.paths.map((p) => fs.readFileSync(path.join(path.dirname(manifestPath), p)));
    const bytes = Buffer.concat(parts);
    Object.assign(out, tf.io.decodeWeights(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), group.weights));
  }
  return out;
}

/** A face-api network (e.g. `new api.FaceRecognitionNet()`) loaded from a manifest. */
export function loadNet<T extends { loadFromWeightMap(map: unknown): void }>(api: FaceApi, net: T, manifestPath: string): T {
  net.loadFromWeightMap(tfjsDecode(api.tf, manifestPath));
  return net;
}

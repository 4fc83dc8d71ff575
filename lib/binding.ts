/**
 * Loads the native addon: a local build (build/Release) first, then a prebuild for this platform
 * (node-gyp-build), and otherwise one error that lists the fixes.
 */
import * as path from 'node:path';
import { FaceError } from './errors';

export interface NativeValueInfo {
  name: string;
  dims: (number | string)[];
  hasShape: boolean;
}

export interface NativeTensor {
  data: Float32Array;
  dims: number[];
}

export interface NativeModel {
  readonly inputs: NativeValueInfo[];
  readonly outputs: NativeValueInfo[];
  readonly threads: number;
  run(inputs: NativeTensor[]): Promise<NativeTensor[]>;
  dispose(): void;
}

export interface NativeDevice {
  name: string;
  available: boolean;
  detail: string;
}

export interface NativeBinding {
  loadModel(bytes: Uint8Array, threads: number): Promise<NativeModel>;
  devices(): NativeDevice[];
}

export const packageRoot = path.resolve(__dirname, '..');

let cached: NativeBinding | undefined;

export function binding(): NativeBinding {
  if (cached) return cached;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => NativeBinding;
    cached = load(packageRoot);
    return cached;
  } catch (cause) {
    throw new FaceError(
      'E_NATIVE',
      `facesight's native addon could not be loaded for ${process.platform}-${process.arch} (Node ${process.version}): ` +
        `${(cause as Error)?.message ?? cause}\n` +
        'Fixes: (1) reinstall so a prebuilt binary is picked up: `npm rebuild facesight`; ' +
        '(2) build it from source: install CMake ≥ 3.18 and a C++17 compiler, then `npm run build:native` in the package; ' +
        '(3) set FACESIGHT_CUDA=0 before building if the CUDA toolkit is broken.',
      { cause },
    );
  }
}

#!/usr/bin/env node
// Builds the native addon with cmake-js (the main build). Used by `npm install` when no prebuild
// matches this platform, and by `npm run build:native`. CUDA sources join the build when nvcc exists.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';

const require = createRequire(import.meta.url);
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const args = [cmakeJs, 'compile', '--out', 'build'];
const jobs = String(Math.max(1, os.availableParallelism?.() ?? os.cpus().length));
if (process.env.FACESIGHT_CUDA === '0') args.push('--CDFACESIGHT_CUDA=OFF');
args.push('--CDFACESIGHT_BUILD_TESTS=ON', '--parallel', jobs);
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
if (result.status !== 0) {
  console.error('\nfacesight: building the native addon failed. It needs CMake >= 3.18 and a C++17 compiler.');
  console.error('Set FACESIGHT_CUDA=0 to build without CUDA if nvcc is present but broken.');
  process.exit(result.status ?? 1);
}

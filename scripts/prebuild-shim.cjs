#!/usr/bin/env node
// prebuildify drives node-gyp (`<shim> rebuild --target=... --devdir=...`); this shim answers with
// cmake-js so prebuilds come from the main build (CUDA included when nvcc exists). The built addon
// lands in build/Release, where prebuildify looks for it.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const args = process.argv.slice(2);
if (!args.includes('rebuild') && !args.includes('build')) process.exit(0);
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const result = spawnSync(process.execPath, [cmakeJs, 'rebuild', '--out', 'build', '--CDFACESIGHT_BUILD_TESTS=OFF'],
  { stdio: 'inherit', cwd: path.resolve(__dirname, '..') });
process.exit(result.status ?? 1);

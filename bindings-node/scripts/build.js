#!/usr/bin/env node
'use strict';
// Builds the native addon from source with cargo (no download) and copies it to
// aisoule_ratelimit.node beside package.json. Run by `npm install` (the package's
// `install` script), so a service that depends on this folder by path builds it too.
//
// Environment: CARGO (the cargo to run, default `cargo`), AISOULE_RATELIMIT_PROFILE
// (`release-node`, the default: release with fat LTO so the core inlines into the addon,
// defined in the workspace Cargo.toml; or `release`, or `dev`).

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const pkgDir = path.resolve(__dirname, '..');
const manifest = path.join(pkgDir, 'Cargo.toml');
const dest = path.join(pkgDir, 'aisoule_ratelimit.node');
const profile = process.env.AISOULE_RATELIMIT_PROFILE || 'release-node';
const cargo = process.env.CARGO || 'cargo';

const args = [
  'build',
  '--locked',
  '--lib',
  '--profile',
  profile,
  '--manifest-path',
  manifest,
  '--message-format=json-render-diagnostics',
];
const run = spawnSync(cargo, args, {
  cwd: pkgDir,
  stdio: ['ignore', 'pipe', 'inherit'],
  maxBuffer: 64 * 1024 * 1024,
  encoding: 'utf8',
});
if (run.error) {
  console.error(
    `@aisoule/ratelimit: cannot run \`${cargo}\` (${run.error.message}).\n` +
      'This package builds its native addon from source: install Rust (rustup or your ' +
      'distribution\'s cargo, 1.88 or newer) and run `npm rebuild @aisoule/ratelimit`.',
  );
  process.exit(1);
}
if (run.status !== 0) {
  console.error(`@aisoule/ratelimit: \`cargo ${args.join(' ')}\` failed (exit ${run.status}).`);
  process.exit(run.status || 1);
}

let built = null;
for (const line of run.stdout.split('\n')) {
  if (!line.startsWith('{')) continue;
  const msg = JSON.parse(line);
  if (
    msg.reason === 'compiler-artifact' &&
    msg.target &&
    msg.target.name === 'aisoule_ratelimit_node' &&
    msg.target.kind.includes('cdylib')
  ) {
    built = msg.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) || built;
  }
}
if (!built) {
  console.error('@aisoule/ratelimit: cargo reported no cdylib for aisoule_ratelimit_node.');
  process.exit(1);
}
// Copy then rename: a process that has the old addon loaded keeps its mapping intact.
const tmp = `${dest}.${process.pid}.tmp`;
fs.copyFileSync(built, tmp);
fs.renameSync(tmp, dest);
console.error(`@aisoule/ratelimit: built ${path.relative(pkgDir, dest)} (${profile}) from ${built}`);

// Packaging: one version everywhere; a service depends on the package by path with npm
// alone (the install script builds the addon from source, nothing downloaded), and both
// module systems and the bin work there.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const lock = JSON.parse(readFileSync(join(pkgDir, 'package-lock.json'), 'utf8'));

test('package.json, package-lock.json and the Cargo workspace carry one version', () => {
  const cargo = readFileSync(join(pkgDir, '..', 'Cargo.toml'), 'utf8');
  const workspaceVersion = /\[workspace\.package\][^[]*?\nversion = "([^"]+)"/.exec(cargo)[1];
  assert.equal(pkg.version, workspaceVersion);
  assert.equal(lock.version, pkg.version);
  assert.equal(lock.packages[''].version, pkg.version);
  assert.match(readFileSync(join(pkgDir, 'Cargo.toml'), 'utf8'), /version\.workspace = true/);
});

test('the package has no runtime dependencies and builds from source at install', () => {
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.scripts.install, 'node scripts/build.js');
  assert.ok(!JSON.stringify(pkg.scripts).includes('http'), 'no script downloads anything');
});

test('a service installs the package by path with npm and uses it from CJS, ESM and the bin', () => {
  const svc = mkdtempSync(join(tmpdir(), 'asrl-svc-'));
  try {
    writeFileSync(join(svc, 'package.json'), JSON.stringify({ name: 'svc', version: '1.0.0', private: true }));
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', pkgDir], { cwd: svc, stdio: 'pipe' });
    const cjs = execFileSync(
      process.execPath,
      ['-e', 'const {Limiter}=require("@aisoule/ratelimit");console.log(new Limiter().check("k","/v1/media",{nowMs:1e12}).headers["X-RateLimit-Limit"])'],
      { cwd: svc, encoding: 'utf8' },
    );
    assert.equal(cjs.trim(), '30');
    const esm = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', 'import {Limiter} from "@aisoule/ratelimit";console.log(new Limiter().check("k","/v1/messages",{nowMs:1e12}).limit)'],
      { cwd: svc, encoding: 'utf8' },
    );
    assert.equal(esm.trim(), '5');
    const trace = join(pkgDir, '..', 'conformance', '01-burst-at-once.trace.jsonl');
    const run = spawnSync('npx', ['--offline', 'aisoule-ratelimit', 'replay', trace], { cwd: svc, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const expected = readFileSync(trace.replace('.trace.', '.expected.'), 'utf8').trim().split('\n');
    assert.deepStrictEqual(
      run.stdout.trim().split('\n').map((l) => JSON.parse(l)),
      expected.map((l) => JSON.parse(l)),
    );
  } finally {
    rmSync(svc, { recursive: true, force: true });
  }
});

// One table in shared memory for processes of three languages: 2 Node, 1 Python and 1 C
// process on one key. The setup builds the Python binding and the C library when they
// are not built (the root `make test` has built every binding by then: no-ops); it skips
// only without python3's venv or a C compiler, and says why.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Limiter } from '@aisoule/ratelimit';
import { buildCrossLanguage, exited, start } from './shm-helpers.mjs';

const NODE_CHILD = new URL('./fixtures/shm-count.mjs', import.meta.url).pathname;
const PY_CHILD = new URL('./fixtures/shm_count.py', import.meta.url).pathname;
const T0 = 1780423178274; // ms: the frozen clock (ns = T0 * 1e6 in every language)
const ATTEMPTS = 20_000;

const tmp = mkdtempSync(join(tmpdir(), 'asrl-xlang-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const built = buildCrossLanguage(tmp);
const skip = built.skip.length ? built.skip.join('; ') : false;
if (skip) console.log(`# cross-language tests skipped: ${skip}`);

/** Runs 2 Node, 1 Python and 1 C process on one key; each returns its admitted `remaining`s. */
async function runMixed(path, config, nowMs, key) {
  const arg = { path, config, attempts: ATTEMPTS, nowMs, key, route: '/' };
  const json = JSON.stringify(arg);
  const procs = [
    { lang: 'node', ...start(process.execPath, [NODE_CHILD, json]) },
    { lang: 'python', ...start(built.python, [PY_CHILD, json]) },
    { lang: 'node', ...start(process.execPath, [NODE_CHILD, json]) },
    {
      lang: 'c',
      ...start(built.c, [path, JSON.stringify(config), String(ATTEMPTS), nowMs === null ? '0' : `${T0}000000`, key, '/']),
    },
  ];
  for (const p of procs) assert.equal(await p.next(), 'ready', `${p.lang} process did not open the segment`);
  const t0 = process.hrtime.bigint();
  for (const p of procs) p.child.stdin.end('go\n');
  const results = await Promise.all(procs.map(async (p) => JSON.parse(await p.next())));
  const t1 = process.hrtime.bigint();
  const codes = await Promise.all(procs.map((p) => exited(p.child)));
  assert.deepStrictEqual(codes, [0, 0, 0, 0]);
  return { results, langs: procs.map((p) => p.lang), elapsedNs: t1 - t0 };
}

test('Node, Python and C processes on one key, frozen clock: exactly the limit, each admission once', { skip }, async (t) => {
  const L = 50_000;
  const config = {
    policies: { p: [{ algorithm: 'window', limit: L, period_ms: 3_600_000 }] },
    routes: [],
    default_policy: 'p',
    capacity: 4096,
  };
  const path = join(tmp, 'frozen');
  const { results, langs } = await runMixed(path, config, T0, 'one-key');
  t.diagnostic(`admitted: ${langs.map((l, i) => `${l} ${results[i].length}`).join(', ')} of ${ATTEMPTS} each`);
  const all = results.flat();
  // L is above what two processes can take (2 x ATTEMPTS): three or four share it.
  assert.equal(all.length, L);
  // Every admission saw its own count: the remaining figures are L-1 .. 0, each once.
  all.sort((a, b) => a - b);
  assert.deepStrictEqual(all, Array.from({ length: L }, (_, i) => i));
  // This process maps the same segment (capacity from the segment) and sees the key spent.
  const here = Limiter.openShared(path, { policies: config.policies, routes: [], defaultPolicy: 'p' });
  assert.equal(here.config.capacity, 4096);
  const d = here.peek('one-key', '/', { nowMs: T0 });
  assert.equal(d.allowed, false);
  assert.equal(d.remaining, 0);
});

test('Node, Python and C processes on one key, real clocks: never more than the burst plus what time allows', { skip }, async (t) => {
  // GCRA: a burst of B at once, then one per T = 1 s. B is above what two processes can
  // take (2 x ATTEMPTS), so three or four of them are admitted something.
  const B = 50_000;
  const config = {
    policies: { q: [{ algorithm: 'gcra', limit: 3600, period_ms: 3_600_000, burst: B }] },
    routes: [],
    default_policy: 'q',
    capacity: 4096,
  };
  const { results, langs, elapsedNs } = await runMixed(join(tmp, 'real'), config, null, 'real-key');
  const total = results.reduce((n, r) => n + r.length, 0);
  const extra = Number(elapsedNs / 1_000_000_000n) + 1; // emission intervals that can have passed
  t.diagnostic(
    `admitted: ${langs.map((l, i) => `${l} ${results[i].length}`).join(', ')}; total ${total} in ${Number(elapsedNs) / 1e6} ms`,
  );
  assert.ok(total >= B, `a fresh key admits its burst: ${total} < ${B}`);
  assert.ok(total <= B + extra, `${total} admitted, the contract allows at most ${B} + ${extra}`);
});

test('a segment made by Python refuses a Node process with another capacity or policy, naming it', { skip }, async () => {
  const path = join(tmp, 'made-by-python');
  const config = {
    policies: { p: [{ algorithm: 'window', limit: 10, period_ms: 60_000 }] },
    routes: [],
    default_policy: 'p',
    capacity: 2048,
  };
  const py = start(built.python, [PY_CHILD, JSON.stringify({ path, config, attempts: 3, nowMs: T0, key: 'k', route: '/' })]);
  assert.equal(await py.next(), 'ready');
  py.child.stdin.end('go\n');
  assert.deepStrictEqual(JSON.parse(await py.next()), [9, 8, 7]);
  assert.equal(await exited(py.child), 0);
  assert.throws(
    () => Limiter.openShared(path, { policies: config.policies, routes: [], defaultPolicy: 'p', capacity: 1024 }),
    (e) => e.code === 'ERR_RATELIMIT_SHARED_CAPACITY' && /capacity 2048, this process asked for 1024/.test(e.message),
  );
  assert.throws(
    () => Limiter.openShared(path, { policies: { p: [{ algorithm: 'window', limit: 11, period_ms: 60_000 }] }, routes: [], defaultPolicy: 'p' }),
    (e) => e.code === 'ERR_RATELIMIT_SHARED_CONFIG' && /other policies or routes/.test(e.message),
  );
  const node = Limiter.openShared(path, { policies: config.policies, routes: [], defaultPolicy: 'p' });
  assert.equal(node.check('k', '/', { nowMs: T0 }).remaining, 6);
});

// kill -9 during a hammering run: workers on one shared table are killed in a loop (and
// replaced) while they check one key; the survivors finish, and the table's count is the
// admissions the workers logged, plus at most one per kill (a check that returned
// admitted in a worker killed before it could log it).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Limiter } from '@aisoule/ratelimit';

const HAMMER = new URL('./fixtures/hammer.mjs', import.meta.url).pathname;
const T0 = 1780423178274;
const LIMIT = 1_000_000; // never reached: every check is admitted and counted
const CONCURRENT = 4;
const KILLS = 8;
const ATTEMPTS = 20_000;
const PLUS = '+'.charCodeAt(0);

test(`${KILLS} workers killed with SIGKILL mid-run: survivors finish, counts hold`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'asrl-kill-'));
  const path = join(dir, 'table');
  const config = {
    policies: { p: [{ algorithm: 'window', limit: LIMIT, period_ms: 3_600_000 }] },
    routes: [],
    default_policy: 'p',
    capacity: 4096,
  };
  const arg = JSON.stringify({ path, config, attempts: ATTEMPTS, nowMs: T0, key: 'hammered' });
  // Made before the workers so that no kill lands in the middle of creating it (a kill
  // there is safe too, the segment being published whole by link(2), but it is not what
  // this test measures).
  const here = Limiter.openShared(path, { policies: config.policies, routes: [], defaultPolicy: 'p', capacity: 4096 });
  const runs = [];
  let kills = 0;
  try {
    await new Promise((resolve, reject) => {
      let live = 0;
      const launch = () => {
        const run = {
          child: spawn(process.execPath, [HAMMER, arg], { stdio: ['ignore', 'pipe', 'inherit'] }),
          logged: 0,
          // The first KILLS workers die somewhere in their run, after a random number of
          // admissions; the last CONCURRENT run to the end.
          killAt: runs.filter((r) => r.killAt !== null).length < KILLS ? 500 + Math.floor(Math.random() * 15_000) : null,
          killed: false,
          exit: null,
        };
        runs.push(run);
        live++;
        run.child.stdout.on('data', (chunk) => {
          for (const b of chunk) if (b === PLUS) run.logged++;
          if (run.killAt !== null && !run.killed && run.logged >= run.killAt) {
            run.killed = true;
            run.child.kill('SIGKILL');
            kills++;
            launch(); // a replacement, as a process manager would start
          }
        });
        run.child.on('close', (code, signal) => {
          run.exit = code ?? signal;
          live--;
          if (live === 0) resolve();
        });
        run.child.on('error', reject);
      };
      for (let i = 0; i < CONCURRENT; i++) launch();
    });
    const killed = runs.filter((r) => r.killed);
    const survivors = runs.filter((r) => !r.killed);
    t.diagnostic(
      `${runs.length} workers; killed after ${killed.map((r) => r.logged).join(', ')} logged admissions; ` +
        `${survivors.length} survivors`,
    );
    assert.equal(kills, KILLS);
    for (const r of killed) {
      assert.equal(r.exit, 'SIGKILL');
      assert.ok(r.logged < ATTEMPTS, 'a worker was killed only after it had finished');
    }
    // The survivors ran to the end, every check admitted and logged.
    assert.ok(survivors.length >= CONCURRENT);
    for (const r of survivors) {
      assert.equal(r.exit, 0);
      assert.equal(r.logged, ATTEMPTS);
    }
    const logged = runs.reduce((n, r) => n + r.logged, 0);
    const counted = LIMIT - here.peek('hammered', '/', { nowMs: T0 }).remaining;
    t.diagnostic(`counted in the table ${counted}, logged ${logged}`);
    assert.ok(counted >= logged, `the table lost admissions: ${counted} < ${logged}`);
    assert.ok(counted <= logged + KILLS, `${counted} counted, ${logged} logged, ${KILLS} kills`);
    // The table still works for everyone after the kills.
    assert.equal(here.check('hammered', '/', { nowMs: T0 }).remaining, LIMIT - counted - 1);
  } finally {
    for (const r of runs) if (r.exit === null) r.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

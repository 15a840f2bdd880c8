// Benchmark (a script, not a test): `check` on a table in shared memory
// (`Limiter.openShared`) against `check` on the process's own table, and against
// rate-limiter-flexible's cluster limiter (`RateLimiterCluster` in a node:cluster worker,
// each `consume` an IPC round trip to the `RateLimiterClusterMaster` in the primary): the
// way each gives several processes one limit. All three run in the same worker process, on
// the same 10,000 keys, in rotating order; prints medians over rounds and the ratios (of
// the medians, and the median of each round's ratio: the machine's load drifts less
// within a round than across the run).
//
//   node bench/shared.mjs [--rounds 31] [--ops 50000] [--ipc-ops 1000]
import cluster from 'node:cluster';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RateLimiterCluster, RateLimiterClusterMaster } from 'rate-limiter-flexible';
import { Limiter } from '@aisoule/ratelimit';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg('rounds', 31);
const OPS = arg('ops', 50_000);
const IPC_OPS = arg('ipc-ops', 1_000); // an IPC round trip is ~100x slower: fewer calls a round
const KEYS = 10_000;
const ROUTE = '/v1/status';

if (cluster.isPrimary) {
  // rate-limiter-flexible's store for its cluster limiters lives here, in the primary.
  new RateLimiterClusterMaster();
  const segment = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `asrl-bench-${process.pid}`);
  const worker = cluster.fork({ ASRL_BENCH_SEGMENT: segment });
  worker.on('exit', (code) => {
    rmSync(segment, { force: true });
    process.exitCode = code;
  });
} else {
  const keys = Array.from({ length: KEYS }, (_, i) => `sk_live_${(i * 2654435761 >>> 0).toString(16).padStart(8, '0')}${i}`);
  // A limit no benchmark reaches: every request takes the admit path in all three.
  const config = {
    policies: { standard: [{ algorithm: 'window', limit: 50_000, period_ms: 60_000 }] },
    routes: [],
    defaultPolicy: 'standard',
    capacity: 65_536,
  };
  const own = new Limiter(config);
  const shared = Limiter.openShared(process.env.ASRL_BENCH_SEGMENT, config);
  const rlf = new RateLimiterCluster({ keyPrefix: 'bench', points: 1_000_000_000, duration: 60, timeoutMs: 10_000 });

  let sink = 0;
  const contenders = {
    'check, own table': [OPS, () => {
      for (let i = 0; i < OPS; i++) sink += own.check(keys[i % KEYS], ROUTE).headers['X-RateLimit-Remaining'].length;
    }],
    'check, shared table': [OPS, () => {
      for (let i = 0; i < OPS; i++) sink += shared.check(keys[i % KEYS], ROUTE).headers['X-RateLimit-Remaining'].length;
    }],
    'RateLimiterCluster consume': [IPC_OPS, async () => {
      for (let i = 0; i < IPC_OPS; i++) sink += (await rlf.consume(keys[i % KEYS])).remainingPoints;
    }],
  };
  const names = Object.keys(contenders);
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  // Warm-up: keys inserted everywhere, functions optimized.
  for (const n of names) await contenders[n][1]();
  for (let r = 0; r < ROUNDS; r++) {
    for (let j = 0; j < names.length; j++) {
      const n = names[(r + j) % names.length];
      const [ops, run] = contenders[n];
      const t = process.hrtime.bigint();
      await run();
      samples[n].push(Number(process.hrtime.bigint() - t) / ops);
    }
  }
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const med = Object.fromEntries(names.map((n) => [n, median(samples[n])]));
  console.log(
    `node ${process.version}, ${KEYS} keys, ${ROUNDS} rounds of ${OPS} checks / ${IPC_OPS} IPC consumes (medians, ns per call)`,
  );
  for (const n of names) {
    const s = samples[n];
    console.log(`  ${n.padEnd(28)} ${med[n].toFixed(1).padStart(9)} ns   (min ${Math.min(...s).toFixed(1)}, max ${Math.max(...s).toFixed(1)})`);
  }
  const verdict = (ok) => (ok ? 'met' : 'MISSED');
  const [sOwn, sShm, sIpc] = names.map((n) => samples[n]);
  const slow = med['check, shared table'] / med['check, own table'];
  const fast = med['RateLimiterCluster consume'] / med['check, shared table'];
  const slowPaired = median(sShm.map((x, i) => x / sOwn[i]));
  const fastPaired = median(sIpc.map((x, i) => x / sShm[i]));
  console.log(
    `ratio shared table / own table:          ${slow.toFixed(2)}x of medians, ${slowPaired.toFixed(2)}x median per round (goal <= 1.5x: ${verdict(slow <= 1.5)})`,
  );
  console.log(
    `ratio RateLimiterCluster / shared table: ${fast.toFixed(1)}x of medians, ${fastPaired.toFixed(1)}x median per round (goal >= 50x: ${verdict(fast >= 50)})`,
  );
  if (sink === 0.5) console.log(sink); // keeps the results alive
  process.exit(0);
}

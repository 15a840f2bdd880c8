// Benchmark (a script, not a test): `Limiter.check` with its decision and headers against
// rate-limiter-flexible `RateLimiterMemory.consume` and express-rate-limit
// `MemoryStore.increment`, in the same process, on the same 10,000 keys. Prints medians
// over rounds (each round runs every contender once, in a rotating order) and the ratios.
//
//   node bench/bench.mjs [--rounds 9] [--ops 1000000]
//
// A round runs each contender for `ops` calls on 10,000 keys, after the others have run:
// its first pass over the keys finds them out of the caches. At 1,000,000 calls that pass
// is 1% of a sample; at 100,000 it was 10%, which added 10-15 ns to every contender.
import { createRequire } from 'node:module';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { MemoryStore } from 'express-rate-limit';
import { Limiter } from '@aisoule/ratelimit';

const require = createRequire(import.meta.url);
const native = require('../aisoule_ratelimit.node');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg('rounds', 9);
const OPS = arg('ops', 1_000_000);
const KEYS = 10_000;
const keys = Array.from({ length: KEYS }, (_, i) => `sk_live_${(i * 2654435761 >>> 0).toString(16).padStart(8, '0')}${i}`);
const ROUTE = '/v1/status';
const T0 = Date.now();

// A limit no benchmark reaches: every request takes the admit path in all three.
const config = {
  policies: { standard: [{ algorithm: 'window', limit: 50_000, period_ms: 60_000 }] },
  routes: [],
  defaultPolicy: 'standard',
  capacity: 65_536,
};
const limiter = new Limiter(config);
const limiterFixed = new Limiter(config);
const rlf = new RateLimiterMemory({ points: 1_000_000_000, duration: 60 });
const erl = new MemoryStore();
erl.init({ windowMs: 60_000 });

// The native call alone (what `check` costs before the JS decision object is built), as
// `check` makes it for a route string it has seen: with the routed policy's index.
const rawJson = JSON.stringify({ policies: config.policies, routes: [], default_policy: 'standard', capacity: 65_536 });
const raw = native.hot(); // a hot function of its own, made as the wrapper makes its one
const L = native.layout();
// `binding` (its token) stays alive to the end: the index stays valid.
const binding = native.bind(native.create(rawJson, 'open', undefined, null, undefined), 'x-ratelimit');
const slots = new Float64Array(raw.scratch, 0, L.bytes / 8);
new Uint32Array(raw.scratch)[L.bound * 2] = binding.index; // as the wrapper writes it
slots[L.mode] = 0;
slots[L.cost] = 1;
slots[L.nowMs] = NaN;
slots[L.policyIn] = -1;
raw(keys[0], ROUTE); // routes ROUTE once, as `check` does on first sight of a route string
slots[L.policyIn] = slots[L.routed]; // then names the policy the core routed it to

let sink = 0;
const contenders = {
  'check (process clocks)': () => {
    for (let i = 0; i < OPS; i++) {
      const d = limiter.check(keys[i % KEYS], ROUTE);
      sink += d.headers['X-RateLimit-Remaining'].length;
    }
  },
  'check (nowMs given)': () => {
    const opts = { nowMs: T0 };
    for (let i = 0; i < OPS; i++) {
      const d = limiterFixed.check(keys[i % KEYS], ROUTE, opts);
      sink += d.headers['X-RateLimit-Remaining'].length;
    }
  },
  'native call only': () => {
    for (let i = 0; i < OPS; i++) raw(keys[i % KEYS], ROUTE);
    sink += slots[L.remaining];
  },
  'rate-limiter-flexible consume': async () => {
    for (let i = 0; i < OPS; i++) {
      const r = await rlf.consume(keys[i % KEYS]);
      sink += r.remainingPoints;
    }
  },
  'express-rate-limit increment': async () => {
    for (let i = 0; i < OPS; i++) {
      const r = await erl.increment(keys[i % KEYS]);
      sink += r.totalHits;
    }
  },
};

const names = Object.keys(contenders);
const samples = Object.fromEntries(names.map((n) => [n, []]));
// Warm-up: every key inserted everywhere, every function optimized.
for (const n of names) await contenders[n]();
for (let r = 0; r < ROUNDS; r++) {
  for (let j = 0; j < names.length; j++) {
    const n = names[(r + j) % names.length];
    const t = process.hrtime.bigint();
    await contenders[n]();
    samples[n].push(Number(process.hrtime.bigint() - t) / OPS);
  }
}
erl.shutdown();

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const med = Object.fromEntries(names.map((n) => [n, median(samples[n])]));
console.log(`node ${process.version}, ${KEYS} keys, ${ROUNDS} rounds of ${OPS} calls (medians, ns per call)`);
for (const n of names) {
  const s = samples[n];
  console.log(`  ${n.padEnd(32)} ${med[n].toFixed(1).padStart(8)} ns   (min ${Math.min(...s).toFixed(1)}, max ${Math.max(...s).toFixed(1)})`);
}
const ours = med['check (process clocks)'];
const ratio = (n) => med[n] / ours;
const verdict = (ok) => (ok ? 'met' : 'MISSED');
console.log(`check median: ${ours.toFixed(1)} ns (goal <= 100 ns: ${verdict(ours <= 100)})`);
console.log(
  `ratio rate-limiter-flexible / check: ${ratio('rate-limiter-flexible consume').toFixed(2)}x (goal >= 3x: ${verdict(ratio('rate-limiter-flexible consume') >= 3)})`,
);
console.log(
  `ratio express-rate-limit / check:    ${ratio('express-rate-limit increment').toFixed(2)}x (goal >= 1x: ${verdict(ratio('express-rate-limit increment') >= 1)})`,
);
console.log(`(with nowMs given: ${med['check (nowMs given)'].toFixed(1)} ns; the native call alone: ${med['native call only'].toFixed(1)} ns)`);
if (sink === 0.5) console.log(sink); // keeps the results alive

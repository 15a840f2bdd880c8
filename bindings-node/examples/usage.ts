// Type-checks the API as a TypeScript service uses it (tsc --noEmit --strict).
import http from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { Limiter, expressRateLimit, fastifyRateLimit, bearerKey, type Decision } from '@aisoule/ratelimit';

const limiter = new Limiter({
  policies: {
    free: [{ algorithm: 'window', limit: 60, period_ms: 60_000 }],
    burst: [
      { algorithm: 'window', limit: 300, period_ms: 60_000 },
      { algorithm: 'gcra', limit: 5, period_ms: 1_000, burst: 10 },
    ],
  },
  routes: [{ prefix: '/v1/messages', policy: 'burst' }],
  defaultPolicy: 'free',
  capacity: 1 << 16,
  onFull: 'closed',
  headerStyle: 'both',
});

const d: Decision = limiter.check('key-1', '/v1/messages', { cost: 2, nowMs: Date.now() });
const allowed: boolean = d.allowed;
const status: 200 | 429 = d.status;
const headers: Record<string, string> = d.headers;
const body: string | null = d.body;
const byPolicy = limiter.peek(Buffer.from('key-1'), undefined, { policy: 'free' });
const shared = Limiter.shared('api', { capacity: 4096 });
const acrossProcesses = new Limiter({ sharedMemory: '/dev/shm/example-ratelimit' });
void acrossProcesses;
const counts: number = limiter.stats().tableFullClosed + shared.stats().tableFullOpen;
void [allowed, status, headers, body, byPolicy, counts, limiter.config.policies, limiter.contentType];

// Express, with a key from a custom header and a cost per request.
const app = express();
app.use(
  expressRateLimit(limiter, {
    key: (req) => req.headers['x-api-key'] as string | undefined,
    cost: () => 1,
    missingKeyStatus: 403,
  }),
);
app.get('/', (req, res) => {
  res.json({ remaining: req.rateLimit?.remaining });
});

// Fastify.
const f = Fastify();
void f.register(fastifyRateLimit, { limiter, policy: 'free', key: (req) => bearerKey(req.headers) });

// Plain http: the middleware with a `next` of your own.
const mw = expressRateLimit(limiter);
http.createServer((req, res) => {
  mw(req, res, (err) => {
    res.statusCode = err ? 500 : 200;
    res.end('ok');
  });
});

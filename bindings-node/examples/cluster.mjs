import cluster from 'node:cluster';
import http from 'node:http';
import { availableParallelism } from 'node:os';
import { Limiter, expressRateLimit } from '@aisoule/ratelimit';

// One table for every worker: a file in shared memory, made by the first process to open it.
const SEGMENT = process.env.RATELIMIT_SEGMENT ?? '/dev/shm/myapi-ratelimit';

if (cluster.isPrimary) {
  Limiter.openShared(SEGMENT); // fails here, before any worker, if the segment does not fit
  const workers = Math.min(4, availableParallelism());
  let listening = 0;
  cluster.on('listening', (worker, address) => {
    if (++listening === workers) console.log(`listening on http://127.0.0.1:${address.port}`);
  });
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  const limit = expressRateLimit(Limiter.openShared(SEGMENT)); // the documented limits
  http
    .createServer((req, res) => {
      limit(req, res, () => {
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ ok: true, worker: process.pid }));
      });
    })
    .listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
}

import express from 'express';
import { Limiter, expressRateLimit } from '@aisoule/ratelimit';

// The documented limits per API key: 120/min; /v1/messages 300/min and 5/s; /v1/media 30/min.
const limiter = new Limiter();

const app = express();
app.use(expressRateLimit(limiter)); // key from "Authorization: Bearer <key>"
app.post('/v1/messages', (req, res) => {
  res.json({ sent: true, remaining: req.rateLimit?.remaining });
});
app.get('/v1/status', (req, res) => {
  res.json({ ok: true });
});

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  console.log(`listening on http://127.0.0.1:${port}`);
});

import Fastify from 'fastify';
import { Limiter, fastifyRateLimit } from '@aisoule/ratelimit';

const limiter = new Limiter(); // the documented limits

const app = Fastify();
await app.register(fastifyRateLimit, { limiter }); // key from "Authorization: Bearer <key>"
app.post('/v1/messages', async () => ({ sent: true }));
app.get('/v1/status', async () => ({ ok: true }));

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' });
console.log(`listening on ${address}`);

// ESM entry of @aisoule/ratelimit: the same objects as the CommonJS entry.
import cjs from './index.js';

export const { Limiter, Decision, expressRateLimit, fastifyRateLimit, bearerKey } = cjs;
export default cjs;

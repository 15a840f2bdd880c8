// Shared by the HTTP tests: raw response headers (to see the names' case on the wire).
import http from 'node:http';

/** GET with node:http, resolving the status and the raw header list [name, value, ...]. */
export function rawGet(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, rawHeaders: res.rawHeaders, body }));
    });
    req.on('error', reject);
  });
}

/** The header names of a raw header list, in order. */
export const rawNames = (raw) => raw.filter((_, i) => i % 2 === 0);

export const BODY = (s) =>
  `{"success":false,"error":{"code":"rate_limit_exceeded","message":"Too many requests. Please wait before retrying.","retry_after_seconds":${s}}}`;

export const auth = (key) => ({ authorization: `Bearer ${key}` });

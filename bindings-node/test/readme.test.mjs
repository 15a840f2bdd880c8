// The README's quick starts are the files in examples/, and they run: each starts a real
// server (PORT=0), which this test drives with fetch.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { BODY, auth } from './http-helpers.mjs';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The code block after each `<!-- example: FILE -->` marker. */
function blocks() {
  const out = [];
  const re = /<!-- example: (\S+) -->\n```js\n([\s\S]*?)```/g;
  for (let m; (m = re.exec(readme)); ) out.push({ file: m[1], code: m[2] });
  return out;
}

test('the README shows the Express and Fastify quick starts, as the example files hold them', () => {
  const b = blocks();
  assert.deepStrictEqual(b.map((x) => x.file), ['examples/express.mjs', 'examples/fastify.mjs']);
  for (const { file, code } of b) assert.equal(code, readFileSync(new URL(`../${file}`, import.meta.url), 'utf8'), file);
});

async function startQuickStart(name, code) {
  // Inside the package, so `@aisoule/ratelimit` resolves to this package (self-reference).
  const file = `${pkg}test/.readme-${name}.mjs`;
  writeFileSync(file, code);
  const child = spawn(process.execPath, [file], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout.setEncoding('utf8');
  let out = '';
  const port = await new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      out += c;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`quick start exited (${code}) before listening: ${out}`)));
  });
  return {
    port,
    async stop() {
      child.kill();
      await once(child, 'exit').catch(() => {});
      rmSync(file, { force: true });
    },
  };
}

for (const { file, code } of blocks()) {
  const name = file.replace(/^examples\/|\.mjs$/g, '');
  test(`the ${name} quick start serves the documented limits`, async () => {
    const app = await startQuickStart(name, code);
    try {
      const base = `http://127.0.0.1:${app.port}`;
      const s = await fetch(`${base}/v1/status`, { headers: auth('quick') });
      assert.equal(s.status, 200);
      assert.equal(s.headers.get('x-ratelimit-limit'), '120');
      assert.equal(s.headers.get('x-ratelimit-remaining'), '119');
      // A fresh key's burst of 5 is admitted; requests faster than 5/s then meet a 429
      // (the loop bounds the count whatever the machine's speed).
      let denied;
      for (let i = 0; i < 100 && !denied; i++) {
        const r = await fetch(`${base}/v1/messages`, { method: 'POST', headers: auth('quick') });
        assert.equal(r.headers.get('x-ratelimit-limit'), '5');
        if (i < 5) assert.equal(r.status, 200);
        if (r.status === 429) denied = r;
        else await r.arrayBuffer();
      }
      assert.ok(denied, 'no 429 within 100 requests');
      assert.equal(denied.status, 429);
      assert.equal(denied.headers.get('content-type'), 'application/json');
      assert.equal(await denied.text(), BODY(Number(denied.headers.get('retry-after'))));
      const none = await fetch(`${base}/v1/status`);
      assert.equal(none.status, 401);
    } finally {
      await app.stop();
    }
  });
}

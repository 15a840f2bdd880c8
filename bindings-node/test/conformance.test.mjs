// Every conformance trace answers as its expected file, through `conformance/replay node`
// (the package bin) and through the library in this process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { replay, TraceError } = require('../lib/replay.js');

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const dir = join(root, 'conformance');
// The shared traces, then the project's own in edge/ (JSON forms, the default config).
const traces = [
  ...readdirSync(dir).filter((f) => f.endsWith('.trace.jsonl')).sort(),
  ...readdirSync(join(dir, 'edge'))
    .filter((f) => f.endsWith('.trace.jsonl'))
    .sort()
    .map((f) => join('edge', f)),
];
// Traces every binding's replay refuses, at line N of NAME.line-N.jsonl.
const malformed = readdirSync(join(dir, 'malformed'))
  .filter((f) => f.endsWith('.jsonl'))
  .sort();
const parseLines = (text) => text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));

test('there are conformance traces to replay', () => {
  assert.ok(traces.length >= 6, `found ${traces.length}`);
});

for (const name of traces) {
  const trace = join(dir, name);
  const expected = parseLines(readFileSync(trace.replace('.trace.jsonl', '.expected.jsonl'), 'utf8'));

  test(`conformance/replay node ${name}`, () => {
    const run = spawnSync(join(dir, 'replay'), ['node', trace], { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(run.status, 0, run.stderr);
    const got = parseLines(run.stdout);
    assert.equal(got.length, expected.length);
    for (let i = 0; i < expected.length; i++) assert.deepStrictEqual(got[i], expected[i], `answer ${i + 1}`);
  });

  // Where code generation from strings is disallowed, the headers objects are built
  // property by property instead of by the generated object literals: the same answers.
  test(`replay ${name} with --disallow-code-generation-from-strings`, () => {
    const bin = join(here, '..', 'bin', 'aisoule-ratelimit.js');
    const run = spawnSync(process.execPath, ['--disallow-code-generation-from-strings', bin, 'replay', trace], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.deepStrictEqual(parseLines(run.stdout), expected);
  });

  test(`in-process replay ${name}`, () => {
    const got = replay(readFileSync(trace, 'utf8')).map((l) => JSON.parse(l));
    assert.deepStrictEqual(got, expected);
  });
}

test('every trace in malformed/ is refused at its line', () => {
  assert.ok(malformed.length >= 20, `found ${malformed.length}`);
  for (const name of malformed) {
    const line = Number(name.split('.line-')[1].replace(/\.jsonl$/, ''));
    assert.throws(
      () => replay(readFileSync(join(dir, 'malformed', name), 'utf8')),
      (e) => e instanceof TraceError && e.line === line,
      name,
    );
  }
});

test('a malformed trace: one line on stderr naming the line, exit status 2', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'asrl-'));
  const cases = [
    ['{"t_ms":1,"key":"k","route":"/"}\n{"t_ms":2,"key":"k"}\n', 'line 2: missing field `route`'],
    ['{"t_ms":1,"key":"k","route":"/"}\nnot json\n', 'line 2: invalid JSON'],
    ['{"t_ms":1,"key":"k","route":"/"}\n{"config":{}}\n', 'line 2: `config` may only be on the first line'],
    ['{"config":{"policies":{"a":[{"algorithm":"gcra","limit":0,"period_ms":1000}]}}}\n', 'line 1: config.policies.a[0].limit'],
    ['{"t_ms":-1,"key":"k","route":"/"}\n', 'line 1: `t_ms` must be a whole number'],
    ['{"t_ms":1,"key":"k","route":"/","x":1}\n', 'line 1: unknown field `x`'],
  ];
  for (const [text, message] of cases) {
    const file = join(tmp, 'bad.trace.jsonl');
    writeFileSync(file, text);
    const run = spawnSync(join(dir, 'replay'), ['node', file], { encoding: 'utf8' });
    assert.equal(run.status, 2, text);
    assert.equal(run.stdout, '');
    const lines = run.stderr.trim().split('\n');
    assert.equal(lines.length, 1, run.stderr);
    assert.ok(lines[0].includes(message), `${lines[0]} should include ${message}`);
  }
});

test('an invalid cost answers {"error":"invalid_cost"} and changes nothing', () => {
  const text = [
    '{"config":{"policies":{"p":[{"algorithm":"window","limit":3,"period_ms":60000}]},"routes":[],"default_policy":"p"}}',
    '{"t_ms":1000,"key":"k","route":"/","cost":2}',
    '{"t_ms":1000,"key":"k","route":"/","cost":4}',
    '{"t_ms":1000,"key":"k","route":"/","cost":0}',
    '{"t_ms":1000,"key":"k","route":"/","cost":1}',
    '{"t_ms":1000,"key":"k","route":"/","cost":1}',
  ].join('\n');
  const got = replay(text).map((l) => JSON.parse(l));
  assert.deepStrictEqual(got[1], { error: 'invalid_cost' });
  assert.deepStrictEqual(got[2], { error: 'invalid_cost' });
  assert.equal(got[0].headers['X-RateLimit-Remaining'], '1');
  assert.equal(got[3].allowed, true);
  assert.equal(got[3].headers['X-RateLimit-Remaining'], '0');
  assert.equal(got[4].allowed, false);
});

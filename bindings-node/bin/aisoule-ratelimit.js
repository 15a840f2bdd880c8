#!/usr/bin/env node
'use strict';
// aisoule-ratelimit replay TRACE: prints the binding's answer to every request of a
// conformance trace, one JSON line each. A malformed trace: one line on stderr, exit 2.

const fs = require('node:fs');

const USAGE = 'usage: aisoule-ratelimit replay TRACE';

function main(argv) {
  if (argv.length !== 2 || argv[0] !== 'replay') {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const path = argv[1];
  let text;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    process.stderr.write(`${path}: ${e.message}\n`);
    return 2;
  }
  const { replay } = require('../lib/replay');
  let lines;
  try {
    lines = replay(text);
  } catch (e) {
    if (e.code === 'ERR_RATELIMIT_TRACE') {
      process.stderr.write(`${path}: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  process.stdout.write(lines.length ? `${lines.join('\n')}\n` : '');
  return 0;
}

// A closed pipe (`| head`) ends the output quietly.
process.stdout.on('error', (e) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(process.exitCode ?? 0);
});
process.exitCode = main(process.argv.slice(2));

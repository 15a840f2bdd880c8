'use strict';
// Loads the native addon built by scripts/build.js.

const path = require('node:path');

const file = path.join(__dirname, '..', 'aisoule_ratelimit.node');
let native;
try {
  native = require(file);
} catch (e) {
  const err = new Error(
    `@aisoule/ratelimit: cannot load the native addon ${file} (${e.message}). ` +
      'It is built from source at install time: run `npm rebuild @aisoule/ratelimit` ' +
      '(needs cargo) or `node scripts/build.js` in the package folder.',
  );
  err.code = 'ERR_RATELIMIT_NATIVE';
  err.cause = e;
  throw err;
}

module.exports = native;

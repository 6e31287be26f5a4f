// Preloaded (`node --require`) into Stryker and its test-runner workers.
// @stryker-mutator/mocha-runner 9.x reaches into mocha's CLI internals with
// extensionless requires (`mocha/lib/cli/run-helpers`, `.../options`,
// `.../collect-files`); mocha 12 renamed those files to `.cjs`, which Node's
// CommonJS resolver never tries, so the plugin fails to load. Registering
// `.cjs` as a CommonJS extension makes those paths resolve again.
// Stryker 10 (whose runner knows mocha 12 is in progress upstream) needs Node 22,
// and this project runs on Node 20; remove this file once both are behind us.
'use strict';

const Module = require('node:module');

if (!Module._extensions['.cjs']) {
  Module._extensions['.cjs'] = Module._extensions['.js'];
}

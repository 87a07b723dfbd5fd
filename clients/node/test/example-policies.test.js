'use strict';
// The example's policy set loads and its suite holds, as the server that the other tests start reads it.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const { gatehouseBin, EXAMPLE_POLICIES } = require('../test-support/gatehouse');

test('examples/policies passes its own suite', () => {
  const out = execFileSync(gatehouseBin(), ['test', EXAMPLE_POLICIES], { encoding: 'utf8' });
  assert.match(out, /^(\d+) passed, 0 failed$/m);
  assert.ok(Number(/(\d+) passed/.exec(out)[1]) >= 10, out);
});

'use strict';
// The package loads its own copy of the API definition at run time; it must be the repository's.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

test('the packaged proto is byte-identical to proto/gatehouse/v1/gatehouse.proto', () => {
  const packaged = path.join(__dirname, '..', 'proto', 'gatehouse', 'v1', 'gatehouse.proto');
  const source = path.join(__dirname, '..', '..', '..', 'proto', 'gatehouse', 'v1', 'gatehouse.proto');
  const a = fs.readFileSync(packaged);
  const b = fs.readFileSync(source);
  assert.ok(
    a.equals(b),
    `clients/node/proto/gatehouse/v1/gatehouse.proto differs from proto/gatehouse/v1/gatehouse.proto: copy it over (cp proto/gatehouse/v1/gatehouse.proto clients/node/proto/gatehouse/v1/)`,
  );
});

test('every RPC of the service has a client method', () => {
  const { Gatehouse } = require('..');
  const proto = fs.readFileSync(path.join(__dirname, '..', 'proto', 'gatehouse', 'v1', 'gatehouse.proto'), 'utf8');
  const rpcs = [...proto.matchAll(/^\s*rpc (\w+)\(/gm)].map((m) => m[1]);
  // The administrative calls are the CLI's (`gatehouse status`, `reload`, ...), not a backend's.
  const administrative = ['ReloadPolicies', 'PolicyStatus', 'IdentityStatus', 'ExercisedPermissions', 'SuggestPolicy'];
  const missing = rpcs
    .filter((rpc) => !administrative.includes(rpc))
    .filter((rpc) => typeof Gatehouse.prototype[rpc[0].toLowerCase() + rpc.slice(1)] !== 'function');
  assert.deepEqual(missing, [], `RPCs without a client method: ${missing.join(', ')}`);
});

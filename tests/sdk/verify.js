// Verifies a token with the JWT library Stream's JavaScript SDKs sign with (jsonwebtoken, resolved from
// getstream's own dependencies) and prints its claims.
//
// Usage: GATEHOUSE_TEST_SECRET=... node verify.js <token>
//
// Prints the claims as one JSON object and exits 0 when the token is an HS256 JWT signed with the
// secret (and, if it has one, its exp has not passed); otherwise prints why to stderr and exits 1.
// The SDKs are loaded from target/sdk-env/node, or from the directory named by GATEHOUSE_SDK_NODE_DIR.
'use strict';

const path = require('path');
const { createRequire } = require('module');

const nodeDir =
  process.env.GATEHOUSE_SDK_NODE_DIR || path.join(__dirname, '..', '..', 'target', 'sdk-env', 'node');
const sdkRequire = createRequire(path.join(nodeDir, 'package.json'));

function main() {
  const secret = process.env.GATEHOUSE_TEST_SECRET;
  if (!secret) {
    console.error('GATEHOUSE_TEST_SECRET is not set');
    return 2;
  }
  const token = process.argv[2];
  if (process.argv.length !== 3 || !token) {
    console.error('usage: verify.js <token>');
    return 2;
  }
  // The copy of jsonwebtoken that getstream itself requires.
  const jwt = createRequire(sdkRequire.resolve('getstream'))('jsonwebtoken');
  let claims;
  try {
    claims = jwt.verify(token, secret, { algorithms: ['HS256'] });
  } catch (error) {
    console.error(`jsonwebtoken rejected the token: ${error.name}: ${error.message}`);
    return 1;
  }
  process.stdout.write(`${JSON.stringify(claims)}\n`);
  return 0;
}

process.exitCode = main();

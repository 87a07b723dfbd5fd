// Drives Stream's official JavaScript Feeds client (getstream) against the sidecar pod's Envoy port, for
// tests/it/deploy.rs: every call is made as a real app would make it, with a user token the SDK's own server
// client minted, and its outcome is printed as one JSON line: {"call", "status", "body"}.
//
// Usage: GATEHOUSE_E2E_URL=http://127.0.0.1:PORT/api/ GATEHOUSE_E2E_KEY=... GATEHOUSE_E2E_SECRET=... \
//        node feeds-client.js
// The SDK is loaded from target/sdk-env/node, or from the directory named by GATEHOUSE_SDK_NODE_DIR.
'use strict';

const path = require('path');
const { createRequire } = require('module');

const nodeDir =
  process.env.GATEHOUSE_SDK_NODE_DIR || path.join(__dirname, '..', '..', 'target', 'sdk-env', 'node');
const stream = createRequire(path.join(nodeDir, 'package.json'))('getstream');

function env(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

async function outcome(call, run) {
  try {
    const body = await run();
    return { call, status: 200, body };
  } catch (error) {
    if (error.response && typeof error.response.status === 'number') {
      return { call, status: error.response.status, body: error.error };
    }
    return { call, status: 0, body: { transport_error: String(error && error.message) } };
  }
}

async function main() {
  const url = env('GATEHOUSE_E2E_URL');
  const key = env('GATEHOUSE_E2E_KEY');
  const secret = env('GATEHOUSE_E2E_SECRET');
  const options = { urlOverride: { api: url }, timeout: 5000, browser: false };

  // Tokens exactly as a backend mints them with the server client.
  const server = stream.connect(key, secret, undefined, options);
  const alice = stream.connect(key, server.createUserToken('alice'), undefined, options);
  const activity = (actor, id) => ({ actor, verb: 'post', object: `note:${id}`, foreign_id: `note:${id}` });

  const calls = [
    ['read own timeline', () => alice.feed('timeline', 'alice').get({ limit: 5 })],
    ['read another user feed', () => alice.feed('user', 'bob').get({ limit: 5 })],
    ['read another timeline', () => alice.feed('timeline', 'bob').get({ limit: 5 })],
    ['post to own user feed', () => alice.feed('user', 'alice').addActivity(activity('alice', 1))],
    ['post as someone else', () => alice.feed('user', 'alice').addActivity(activity('bob', 2))],
    ['notify another user', () => alice.feed('notification', 'bob').addActivity(activity('alice', 3))],
    ['post to another user feed', () => alice.feed('user', 'bob').addActivity(activity('alice', 4))],
  ];
  for (const [call, run] of calls) {
    process.stdout.write(`${JSON.stringify(await outcome(call, run))}\n`);
  }
}

main().catch((error) => {
  console.error(String(error && error.stack));
  process.exitCode = 1;
});

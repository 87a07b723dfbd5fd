// Mints tokens with Stream's official JavaScript SDKs and prints them as one JSON object.
//
// Usage: GATEHOUSE_TEST_SECRET=... node mint.js
//
// Output: {"now": <unix seconds used for exp/iat>, "tokens": {"<name>": "<jwt>", ...}}
// getstream (Activity Feeds) tokens are named feeds_*, stream-chat tokens chat_*.
// The SDKs are loaded from target/sdk-env/node (scripts/sdk-env.sh installs them there), or from the
// directory named by GATEHOUSE_SDK_NODE_DIR.
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
  const now = Math.floor(Date.now() / 1000);
  const tokens = {};

  const stream = sdkRequire('getstream');
  const feeds = stream.connect('key', secret);
  tokens.feeds_user = feeds.createUserToken('tommaso');
  tokens.feeds_user_plan = feeds.createUserToken('tommaso', { plan: 'pro' });
  tokens.feeds_readonly = feeds.getReadOnlyToken('user', 'jack');
  tokens.feeds_readwrite = feeds.getReadWriteToken('timeline', 'jack');
  const feed = feeds.feed('user', 'jack');
  if (typeof feed.token !== 'string') {
    console.error('getstream feeds no longer carry a token property');
    return 1;
  }
  tokens.feeds_feed_token = feed.token;
  // The token the server-side client signs its own user, activity and batch calls with.
  tokens.feeds_server = feeds.getOrCreateToken();
  tokens.feeds_personalization = feeds.getPersonalizationToken();
  tokens.feeds_collections = feeds.getCollectionsToken();
  tokens.feeds_analytics = feeds.getAnalyticsToken();
  // With expireTokens the SDK stamps iat on the tokens it mints.
  const expiring = stream.connect('key', secret, null, { expireTokens: true });
  tokens.feeds_user_iat = expiring.createUserToken('tommaso');
  // The SDK's signing module, with list-valued scopes (joined into comma lists).
  const signing = sdkRequire('getstream/lib/signing');
  tokens.feeds_signing_server = signing.JWTScopeToken(secret, '*', '*', { feedId: '*' });
  tokens.feeds_signing_lists = signing.JWTScopeToken(secret, ['feed', 'follower'], ['read', 'write'], {
    feedId: ['timelinejack', 'userjack'],
  });

  const { StreamChat } = sdkRequire('stream-chat');
  const chat = new StreamChat('key', secret);
  tokens.chat_user = chat.createToken('jack');
  tokens.chat_user_exp_iat = chat.createToken('jack', now + 3600, now - 10);
  tokens.chat_expired = chat.createToken('jack', now - 60);
  // The token the server-side client sends with its own calls: JWTServerToken, {"server": true}.
  tokens.chat_server = chat._getToken();
  // Unsigned development tokens: "header.payload.devtoken".
  tokens.chat_dev = chat.devToken('jack');
  tokens.chat_dev_padded = chat.devToken('jack-2');

  for (const [name, token] of Object.entries(tokens)) {
    if (typeof token !== 'string' || token.split('.').length !== 3) {
      console.error(`${name} is not a compact JWT string: ${JSON.stringify(token)}`);
      return 1;
    }
  }
  process.stdout.write(`${JSON.stringify({ now, tokens })}\n`);
  return 0;
}

process.exitCode = main();

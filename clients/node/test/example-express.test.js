'use strict';
// The example app's REST routes behind the Express middleware, over real HTTP, against a real gatehouse.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startGatehouse } = require('../test-support/gatehouse');
const { Gatehouse } = require('..');
const { start } = require('../examples/app');

test('Express middleware in the example app', async (t) => {
  const server = await startGatehouse();
  const app = await start({ gatehouseAddress: server.address, timeoutMs: 5000 });
  t.after(async () => {
    await app.close();
    await server.dispose();
  });
  const as = (token) => ({ authorization: `Bearer ${token}` });
  const alice = server.userToken('alice');
  const bob = server.userToken('bob');
  const maria = server.userToken('maria', ['moderator']);

  await t.test('no Authorization header is 401 JSON', async () => {
    const res = await fetch(`${app.url}/api/questions/q1`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('content-type'), /application\/json/);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer');
    assert.deepEqual(await res.json(), { error: 'unauthenticated', message: 'missing Authorization: Bearer token' });
  });

  await t.test('a garbled Authorization header is 401, and the token is read from nowhere else', async () => {
    for (const authorization of ['Basic YWxpY2U6c2VjcmV0', `Bearer`, `Bearer ${alice} extra`, alice]) {
      const res = await fetch(`${app.url}/api/questions/q1`, { headers: { authorization } });
      assert.equal(res.status, 401, authorization);
      assert.equal((await res.json()).error, 'unauthenticated');
    }
    const query = await fetch(`${app.url}/api/questions/q1?access_token=${alice}`, { headers: { cookie: `token=${alice}` } });
    assert.equal(query.status, 401);
  });

  await t.test('a token gatehouse refuses is 401 with the reason and without the token', async () => {
    const forged = server.foreignToken('alice');
    const res = await fetch(`${app.url}/api/questions/q1`, { headers: as(forged) });
    assert.equal(res.status, 401);
    const text = await res.text();
    assert.match(JSON.parse(text).message, /^token refused: .*signature/);
    assert.ok(!text.includes(forged));
  });

  await t.test('allowed requests reach the handler', async () => {
    const res = await fetch(`${app.url}/api/questions/q1`, { headers: as(bob) });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).authorId, 'alice');
  });

  await t.test('a denial is 403 JSON with the reason, and the handler does not run', async () => {
    const res = await fetch(`${app.url}/api/questions/q1`, { method: 'DELETE', headers: as(bob) });
    assert.equal(res.status, 403);
    const body = await res.json();
    assert.equal(body.error, 'forbidden');
    assert.equal(body.rule, 'default-deny');
    assert.match(body.reason, /user 'bob' is not allowed to perform delete on question q1/);
    assert.equal((await fetch(`${app.url}/api/questions/q1`, { headers: as(bob) })).status, 200, 'the question is still there');
  });

  await t.test('a moderator deletes any question', async () => {
    const issuer = new Gatehouse(server.address, { serverToken: server.serverToken });
    const created = await issuer.issueToken({ userId: 'mod2', roles: ['moderator'] }).finally(() => issuer.close());
    // The first delete removes it; the second is allowed too and finds nothing.
    for (const [token, status] of [[maria, 204], [created.token, 404]]) {
      const res = await fetch(`${app.url}/api/questions/q1`, { method: 'DELETE', headers: as(token) });
      assert.equal(res.status, status);
    }
    assert.equal((await fetch(`${app.url}/api/questions/q1`, { headers: as(alice) })).status, 404);
  });

  await t.test('a plain check inside a handler: the email only for its owner', async () => {
    const own = await (await fetch(`${app.url}/api/users/alice`, { headers: as(alice) })).json();
    assert.equal(own.email, 'alice@example.com');
    const other = await (await fetch(`${app.url}/api/users/alice`, { headers: as(bob) })).json();
    assert.deepEqual(other, { id: 'alice', name: 'Alice' });
  });

  await t.test('the middleware refuses a configuration it cannot honour', () => {
    const gatehouse = app.gatehouse;
    assert.throws(() => gatehouse.express({ action: 'read', resource: () => ({ kind: 'question' }), fail: 'maybe' }), /fail must be/);
    assert.throws(() => gatehouse.express({ action: 'read' }), /resource/);
  });
});

'use strict';
// The example app's GraphQL endpoint: resolver guards and a field-level rule, over real HTTP, against a
// real gatehouse.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startGatehouse } = require('../test-support/gatehouse');
const { start } = require('../examples/app');

test('GraphQL guard in the example app', async (t) => {
  const server = await startGatehouse();
  const app = await start({ gatehouseAddress: server.address, timeoutMs: 5000 });
  t.after(async () => {
    await app.close();
    await server.dispose();
  });
  const alice = server.userToken('alice');
  const bob = server.userToken('bob');
  const maria = server.userToken('maria', ['moderator']);

  /** POSTs a query; `token` undefined sends no Authorization header. */
  async function gql(query, token, variables) {
    const headers = { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
    const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
    assert.equal(res.status, 200);
    return res.json();
  }
  const codes = (result) => (result.errors ?? []).map((e) => [e.path.join('.'), e.extensions.code]);

  await t.test('everyone, anonymous callers too, reads questions', async () => {
    const result = await gql('{ question(id: "q1") { text author { id name } answers { text } } }');
    assert.equal(result.errors, undefined);
    assert.equal(result.data.question.author.id, 'alice');
    assert.equal(result.data.question.answers.length, 1);
  });

  await t.test('an anonymous mutation is UNAUTHENTICATED', async () => {
    const result = await gql('mutation { createQuestion(text: "Why?") { id } }');
    assert.equal(result.data, null);
    assert.deepEqual(codes(result), [['createQuestion', 'UNAUTHENTICATED']]);
  });

  await t.test('a signed-in user asks, as the author the token names', async () => {
    const result = await gql('mutation($text: String!) { createQuestion(text: $text) { id text author { id } } }', bob, { text: 'Why?' });
    assert.equal(result.errors, undefined);
    assert.equal(result.data.createQuestion.author.id, 'bob');
  });

  await t.test("deleting someone else's question is FORBIDDEN with the reason; the author may", async () => {
    const refused = await gql('mutation { deleteQuestion(id: "q1") }', bob);
    assert.equal(refused.data, null);
    assert.deepEqual(codes(refused), [['deleteQuestion', 'FORBIDDEN']]);
    assert.equal(refused.errors[0].extensions.rule, 'default-deny');
    assert.match(refused.errors[0].message, /user 'bob' is not allowed to perform delete on question q1/);

    const allowed = await gql('mutation { deleteQuestion(id: "q1") }', alice);
    assert.equal(allowed.errors, undefined);
    assert.equal(allowed.data.deleteQuestion, true);
  });

  await t.test('a moderator deletes any question', async () => {
    const created = await gql('mutation { createQuestion(text: "Mine") { id } }', bob);
    const id = created.data.createQuestion.id;
    const result = await gql(`mutation { deleteQuestion(id: "${id}") }`, maria);
    assert.equal(result.errors, undefined);
    assert.equal(result.data.deleteQuestion, true);
  });

  await t.test('field level: a user reads their own email, nobody else does', async () => {
    const query = '{ user(id: "alice") { id name email } }';
    const own = await gql(query, alice);
    assert.equal(own.errors, undefined);
    assert.equal(own.data.user.email, 'alice@example.com');

    const other = await gql(query, bob);
    assert.deepEqual(other.data.user, { id: 'alice', name: 'Alice', email: null });
    assert.deepEqual(codes(other), [['user.email', 'FORBIDDEN']]);

    const moderator = await gql(query, maria);
    assert.equal(moderator.data.user.email, null);
    assert.deepEqual(codes(moderator), [['user.email', 'FORBIDDEN']]);

    const anonymous = await gql(query);
    assert.equal(anonymous.data.user.name, 'Alice');
    assert.deepEqual(codes(anonymous), [['user.email', 'UNAUTHENTICATED']]);
  });

  await t.test('a token gatehouse refuses is UNAUTHENTICATED, and the response holds no token', async () => {
    const forged = server.foreignToken('alice');
    const res = await fetch(`${app.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${forged}` },
      body: JSON.stringify({ query: '{ question(id: "q1") { text } }' }),
    });
    const text = await res.text();
    assert.ok(!text.includes(forged));
    assert.deepEqual(codes(JSON.parse(text)), [['question', 'UNAUTHENTICATED']]);
  });

  await t.test('a garbled Authorization header is 401', async () => {
    const res = await fetch(`${app.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Token abc' },
      body: JSON.stringify({ query: '{ question(id: "q1") { text } }' }),
    });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).errors[0].extensions.code, 'UNAUTHENTICATED');
  });
});

'use strict';
// Deadlines, retries and failure modes: a hung server, a dead port, a server that stops and comes back.
// Time bounds are generous on purpose: they catch a call that ignores its deadline, not a slow machine.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startGatehouse, deadPort, silentServer } = require('../test-support/gatehouse');
const { Gatehouse, Unavailable, DeadlineExceeded } = require('..');
const { start } = require('../examples/app');

const question = { kind: 'question', id: 'q1', attributes: { author_id: 'alice' } };
// Any token will do where no server answers; a real one keeps the calls well-formed.
const someToken = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiYWxpY2UifQ.c2lnbmF0dXJl';

test('a server that accepts and never answers is DeadlineExceeded at the deadline, not retried', async (t) => {
  const hung = await silentServer();
  const gatehouse = new Gatehouse(hung.address, { timeoutMs: 300, retries: 5 });
  t.after(async () => {
    gatehouse.close();
    await hung.close();
  });
  const started = Date.now();
  const err = await gatehouse.check({ token: someToken, action: 'read', resource: question }).catch((e) => e);
  const elapsed = Date.now() - started;
  assert.ok(err instanceof DeadlineExceeded, `got ${err}`);
  assert.equal(err.code, 'DEADLINE_EXCEEDED');
  assert.equal(err.attempts, 1);
  assert.ok(hung.accepted() >= 1, 'the client never reached the silent server');
  assert.ok(elapsed >= 250 && elapsed < 3000, `took ${elapsed} ms for a 300 ms deadline`);
  assert.ok(!err.message.includes(someToken));
});

test('a dead port is retried a bounded number of times', async (t) => {
  const gatehouse = new Gatehouse(`127.0.0.1:${await deadPort()}`, { timeoutMs: 10_000, retries: 3 });
  t.after(() => gatehouse.close());
  const started = Date.now();
  const err = await gatehouse.check({ token: someToken, action: 'read', resource: question }).catch((e) => e);
  assert.ok(err instanceof Unavailable, `got ${err}`);
  assert.equal(err.attempts, 4, 'one attempt and three retries');
  assert.match(err.message, /after 4 attempts/);
  assert.ok(Date.now() - started < 10_000);
  assert.ok(!err.message.includes(someToken));
});

test('retries stop at the deadline however many are allowed', async (t) => {
  const gatehouse = new Gatehouse(`127.0.0.1:${await deadPort()}`, { timeoutMs: 400, retries: 1000 });
  t.after(() => gatehouse.close());
  const started = Date.now();
  const err = await gatehouse.verify(someToken).catch((e) => e);
  const elapsed = Date.now() - started;
  // Out of time between attempts, the error is what went wrong (unreachable), not a timeout.
  assert.ok(err instanceof Unavailable || err instanceof DeadlineExceeded, `got ${err}`);
  assert.ok(err.attempts > 1 && err.attempts < 1000, `${err.attempts} attempts`);
  assert.ok(elapsed < 3000, `took ${elapsed} ms for a 400 ms deadline`);
});

test('a call retried across a restart finds the server again', async (t) => {
  const server = await startGatehouse();
  const gatehouse = new Gatehouse(server.address, { timeoutMs: 15_000, retries: 100 });
  t.after(async () => {
    gatehouse.close();
    await server.dispose();
  });
  const token = server.userToken('alice');
  assert.equal((await gatehouse.check({ token, action: 'delete', resource: question })).allowed, true);

  await server.stop();
  const restarted = new Promise((resolve) => setTimeout(resolve, 300)).then(() => server.restart());
  const decision = await gatehouse.check({ token, action: 'delete', resource: question });
  await restarted;
  assert.equal(decision.allowed, true);
  assert.equal(decision.rule, 'authors-delete-their-own');
});

test('failure mode: closed answers 503, open lets the request through with a warning', async (t) => {
  const server = await startGatehouse();
  const warnings = [];
  const logger = { warn: (message) => warnings.push(message) };
  // Few retries and a short deadline: the point is what happens when they run out.
  const options = { gatehouseAddress: server.address, timeoutMs: 1000, retries: 1, logger };
  const closed = await start({ ...options, fail: 'closed' });
  const open = await start({ ...options, fail: 'open' });
  t.after(async () => {
    await closed.close();
    await open.close();
    await server.dispose();
  });
  const token = server.userToken('bob');
  const headers = { authorization: `Bearer ${token}` };
  const gql = (app, query) =>
    fetch(`${app.url}/graphql`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ query }) }).then((r) => r.json());

  // Up: both modes decide.
  for (const app of [closed, open]) {
    assert.equal((await fetch(`${app.url}/api/questions/q1`, { headers })).status, 200);
    assert.equal((await fetch(`${app.url}/api/questions/q1`, { method: 'DELETE', headers })).status, 403);
  }
  assert.deepEqual(warnings, []);

  await server.stop();

  const refused = await fetch(`${closed.url}/api/questions/q1`, { headers });
  assert.equal(refused.status, 503);
  assert.equal((await refused.json()).error, 'unavailable');
  const refusedGql = await gql(closed, '{ question(id: "q1") { text } }');
  assert.equal(refusedGql.data.question, null);
  assert.equal(refusedGql.errors[0].extensions.code, 'UNAVAILABLE');

  const allowed = await fetch(`${open.url}/api/questions/q1`, { headers });
  assert.equal(allowed.status, 200);
  assert.equal((await allowed.json()).id, 'q1');
  const allowedGql = await gql(open, '{ question(id: "q1") { text } }');
  assert.equal(allowedGql.errors, undefined);
  assert.match(allowedGql.data.question.text, /delete button/);

  assert.ok(warnings.length >= 2, `warnings: ${warnings.join('\n')}`);
  assert.ok(warnings.some((w) => /allowing GET \/api\/questions\/q1/.test(w)));
  assert.ok(warnings.some((w) => /resolving Query\.question/.test(w)));
  for (const warning of warnings) assert.ok(!warning.includes(token), 'a warning holds the token');

  // Back up: closed decides again without a restart of the app, once its channel has reconnected.
  await server.restart();
  let status = 0;
  for (const until = Date.now() + 10_000; status !== 200 && Date.now() < until; ) {
    status = (await fetch(`${closed.url}/api/questions/q1`, { headers })).status;
    if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(status, 200);
});

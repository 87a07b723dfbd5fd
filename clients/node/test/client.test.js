'use strict';
// Every call of the client against a real gatehouse serving the example policy set.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startGatehouse } = require('../test-support/gatehouse');
const { Gatehouse, GatehouseError, Unauthenticated, PermissionDenied, InvalidRequest } = require('..');

test('gatehouse calls', async (t) => {
  const server = await startGatehouse();
  const gatehouse = new Gatehouse(server.address, { serverToken: server.serverToken, timeoutMs: 5000 });
  t.after(async () => {
    gatehouse.close();
    await server.dispose();
  });
  const alice = server.userToken('alice');
  const bob = server.userToken('bob');
  const alicesQuestion = { kind: 'question', id: 'q1', attributes: { author_id: 'alice' } };

  await t.test('check allows the author to delete her question', async () => {
    const decision = await gatehouse.check({ token: alice, action: 'delete', resource: alicesQuestion });
    assert.equal(decision.allowed, true);
    assert.equal(decision.rule, 'authors-delete-their-own');
    assert.equal(decision.principal.kind, 'USER');
    assert.equal(decision.principal.userId, 'alice');
    assert.match(decision.policyRevision, /^[0-9a-f]+$/);
    assert.equal(decision.explanation, null);
  });

  await t.test('a denial is a result, not an error', async () => {
    const decision = await gatehouse.check({ token: bob, action: 'delete', resource: alicesQuestion, explain: true });
    assert.equal(decision.allowed, false);
    assert.equal(decision.rule, 'default-deny');
    assert.match(decision.reason, /user 'bob' is not allowed to perform delete on question q1/);
    assert.ok(decision.explanation.entries.some((entry) => entry.name === 'authors-delete-their-own'));
  });

  await t.test('anonymous callers are decided as such', async () => {
    const read = await gatehouse.check({ anonymous: true, action: 'read', resource: alicesQuestion });
    assert.equal(read.allowed, true);
    assert.equal(read.principal.kind, 'ANONYMOUS');
    const create = await gatehouse.check({ anonymous: true, action: 'create', resource: { kind: 'question', id: 'new' } });
    assert.equal(create.allowed, false);
  });

  await t.test('a principal described with the server token', async () => {
    const maria = { userId: 'maria', roles: ['moderator'] };
    const decision = await gatehouse.check({ principal: maria, action: 'delete', resource: alicesQuestion });
    assert.equal(decision.allowed, true);
    assert.equal(decision.rule, 'moderators-delete-anything');
    // Without a server token the server does not take the caller's word for who the principal is.
    const plain = new Gatehouse(server.address, { timeoutMs: 5000 });
    const asUser = new Gatehouse(server.address, { serverToken: bob, timeoutMs: 5000 });
    try {
      await assert.rejects(plain.check({ principal: maria, action: 'delete', resource: alicesQuestion }), Unauthenticated);
      await assert.rejects(asUser.check({ principal: maria, action: 'delete', resource: alicesQuestion }), PermissionDenied);
    } finally {
      plain.close();
      asUser.close();
    }
  });

  await t.test('checkBatch answers in item order', async () => {
    const { results, principal } = await gatehouse.checkBatch({
      token: bob,
      items: [
        { action: 'read', resource: alicesQuestion },
        { action: 'delete', resource: alicesQuestion },
        { action: 'delete', resource: { kind: 'answer', id: 'a1', attributes: { author_id: 'bob' } } },
        { action: 'read_email', resource: { kind: 'user', id: 'bob' } },
      ],
    });
    assert.deepEqual(
      results.map((r) => r.allowed),
      [true, false, true, true],
    );
    assert.deepEqual(
      results.map((r) => r.rule),
      ['everyone-reads', 'default-deny', 'authors-delete-their-own', 'users-read-their-own-email'],
    );
    assert.equal(principal.userId, 'bob');
  });

  await t.test('allowedActions lists what the caller may do', async () => {
    const own = await gatehouse.allowedActions({ token: alice, resource: alicesQuestion });
    assert.deepEqual([...own.actions].sort(), ['create', 'delete', 'read']);
    const other = await gatehouse.allowedActions({ token: bob, resource: alicesQuestion });
    assert.deepEqual([...other.actions].sort(), ['create', 'read']);
    const profile = await gatehouse.allowedActions({ anonymous: true, resource: { kind: 'user', id: 'alice' } });
    assert.deepEqual(profile.actions, ['read']);
  });

  await t.test('capabilities covers many resources in one call', async () => {
    const { resources, principal } = await gatehouse.capabilities({
      token: alice,
      resources: [alicesQuestion, { kind: 'answer', id: 'a1', attributes: { author_id: 'bob' } }, { kind: 'user', id: 'alice' }, { kind: 'user', id: 'bob' }],
    });
    assert.equal(principal.userId, 'alice');
    assert.deepEqual(
      resources.map((r) => [r.kind, r.id, [...r.actions].sort()]),
      [
        ['question', 'q1', ['create', 'delete', 'read']],
        ['answer', 'a1', ['create', 'read']],
        ['user', 'alice', ['read', 'read_email']],
        ['user', 'bob', ['read']],
      ],
    );
    const onlyDelete = await gatehouse.capabilities({ token: alice, resources: [alicesQuestion], actions: ['delete'] });
    assert.deepEqual(onlyDelete.resources[0].actions, ['delete']);
  });

  await t.test('issueToken mints a token the server verifies', async () => {
    const before = Date.now();
    const issued = await gatehouse.issueToken({ userId: 'carol', expiresInSeconds: 3600, roles: ['moderator'], claims: { team: 'docs', level: 3 } });
    assert.match(issued.token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.ok(issued.expiresAt instanceof Date);
    const lifetime = issued.expiresAt.getTime() - before;
    assert.ok(lifetime > 3500_000 && lifetime <= 3601_000, `expires in ${lifetime} ms`);

    const principal = await gatehouse.verify(issued.token);
    assert.equal(principal.kind, 'USER');
    assert.equal(principal.userId, 'carol');
    assert.deepEqual(principal.roles, ['moderator']);
    assert.equal(principal.claims.team, 'docs');
    assert.equal(principal.claims.level, 3);
    assert.ok(principal.expiresAt instanceof Date);

    const forever = await gatehouse.issueToken({ userId: 'dave' });
    assert.equal(forever.expiresAt, null);
    const decision = await gatehouse.check({ token: issued.token, action: 'delete', resource: alicesQuestion });
    assert.equal(decision.rule, 'moderators-delete-anything');
  });

  await t.test('issueToken with a user token is PermissionDenied, without the token in the error', async () => {
    const asUser = new Gatehouse(server.address, { serverToken: alice, timeoutMs: 5000 });
    try {
      const err = await asUser.issueToken({ userId: 'mallory' }).catch((e) => e);
      assert.ok(err instanceof PermissionDenied, `got ${err}`);
      assert.ok(err instanceof GatehouseError);
      assert.equal(err.code, 'PERMISSION_DENIED');
      assert.equal(err.method, 'IssueToken');
      assert.ok(!err.message.includes(alice) && !err.stack.includes(alice));
    } finally {
      asUser.close();
    }
  });

  await t.test('verify names the principal', async () => {
    const principal = await gatehouse.verify(alice);
    assert.equal(principal.userId, 'alice');
    assert.equal(principal.kind, 'USER');
    assert.ok(principal.issuedAt instanceof Date);
    const serverPrincipal = await gatehouse.verify(server.serverToken);
    assert.equal(serverPrincipal.kind, 'SERVER');
  });

  await t.test('a token the server did not sign is Unauthenticated, and the error holds no token', async () => {
    const forged = server.foreignToken('alice');
    for (const call of [() => gatehouse.verify(forged), () => gatehouse.check({ token: forged, action: 'read', resource: alicesQuestion })]) {
      const err = await call().catch((e) => e);
      assert.ok(err instanceof Unauthenticated, `got ${err}`);
      assert.equal(err.code, 'UNAUTHENTICATED');
      assert.equal(err.attempts, 1);
      assert.match(err.details, /signature/);
      assert.ok(!JSON.stringify({ ...err, message: err.message, stack: err.stack }).includes(forged));
    }
    await assert.rejects(gatehouse.verify('not-a-jwt'), Unauthenticated);
    await assert.rejects(gatehouse.check({ action: 'read', resource: alicesQuestion }), Unauthenticated);
  });

  await t.test('an invalid request is InvalidRequest and is not retried', async () => {
    const noAction = await gatehouse.check({ token: alice, resource: alicesQuestion }).catch((e) => e);
    assert.ok(noAction instanceof InvalidRequest, `got ${noAction}`);
    assert.equal(noAction.attempts, 1);
    assert.match(noAction.message, /action/);
    await assert.rejects(gatehouse.check({ token: alice, action: 'read', resource: { id: 'q1' } }), InvalidRequest);
    const items = Array.from({ length: 1001 }, () => ({ action: 'read', resource: alicesQuestion }));
    await assert.rejects(gatehouse.checkBatch({ token: alice, items }), InvalidRequest);
    await assert.rejects(gatehouse.issueToken({ userId: '' }), InvalidRequest);
  });

  await t.test('a client never shows its server token', () => {
    const { inspect } = require('node:util');
    assert.ok(!inspect(gatehouse, { depth: 5 }).includes(server.serverToken));
    assert.ok(!JSON.stringify(Object.keys(gatehouse)).includes('serverToken'));
  });
});

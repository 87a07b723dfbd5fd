'use strict';
// A small Stack Overflow whose API asks gatehouse before anything happens, over REST (Express
// middleware) and GraphQL (resolver guards). Its policy set is examples/policies/: everyone reads,
// signed-in users ask and delete their own, moderators delete anything, and a user's email is shown
// only to that user.
//
// Run it next to a gatehouse serving that set:
//   GATEHOUSE_POLICY_DIR=examples/policies GATEHOUSE_API_SECRET=... gatehouse serve
//   GATEHOUSE_ADDR=127.0.0.1:50051 PORT=3000 node examples/app.js
// then call it with a user token (`gatehouse token issue --user alice`):
//   curl -H "Authorization: Bearer $TOKEN" -X DELETE localhost:3000/api/questions/q1
//   curl -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
//     -d '{"query": "{ user(id: \"alice\") { name email } }"}' localhost:3000/graphql

const express = require('express');
const { buildSchema, graphql } = require('graphql');
const { Gatehouse, bearerToken } = require('../src');

/** In-memory data: enough to show ownership decisions. */
function createStore() {
  return {
    users: new Map([
      ['alice', { id: 'alice', name: 'Alice', email: 'alice@example.com' }],
      ['bob', { id: 'bob', name: 'Bob', email: 'bob@example.com' }],
      ['maria', { id: 'maria', name: 'Maria', email: 'maria@example.com' }],
    ]),
    questions: new Map([['q1', { id: 'q1', text: 'How do I hide the delete button?', authorId: 'alice' }]]),
    answers: new Map([['a1', { id: 'a1', questionId: 'q1', text: 'Ask gatehouse for capabilities.', authorId: 'bob' }]]),
    nextId: 2,
  };
}

const typeDefs = `
  type Query {
    question(id: ID!): Question
    user(id: ID!): User
  }
  type Mutation {
    createQuestion(text: String!): Question!
    deleteQuestion(id: ID!): Boolean!
  }
  type Question { id: ID!, text: String!, author: User, answers: [Answer!]! }
  type Answer { id: ID!, text: String!, author: User }
  type User { id: ID!, name: String!, email: String }
`;

/**
 * The GraphQL schema with its resolvers; the guarded ones ask gatehouse first.
 * @param {Gatehouse} gatehouse
 * @param {ReturnType<typeof createStore>} store
 * @param {'closed' | 'open'} fail
 */
function createSchema(gatehouse, store, fail) {
  const guard = (options, resolver) => gatehouse.guard({ fail, ...options }, resolver);
  const authorAttributes = (item) => (item ? { author_id: item.authorId } : {});

  const resolvers = {
    Query: {
      question: guard({ action: 'read', resource: (_, { id }) => ({ kind: 'question', id }) }, (_, { id }) => store.questions.get(id) ?? null),
      user: guard({ action: 'read', resource: (_, { id }) => ({ kind: 'user', id }) }, (_, { id }) => store.users.get(id) ?? null),
    },
    Mutation: {
      createQuestion: guard({ action: 'create', resource: () => ({ kind: 'question', id: 'new' }) }, async (_, { text }, ctx) => {
        // The guard said a signed-in user may ask; the author is whoever the token names.
        const { userId } = await gatehouse.verify(ctx.token);
        const question = { id: `q${store.nextId++}`, text, authorId: userId };
        store.questions.set(question.id, question);
        return question;
      }),
      deleteQuestion: guard(
        { action: 'delete', resource: (_, { id }) => ({ kind: 'question', id, attributes: authorAttributes(store.questions.get(id)) }) },
        (_, { id }) => store.questions.delete(id),
      ),
    },
    Question: {
      author: (q) => store.users.get(q.authorId) ?? null,
      answers: (q) => [...store.answers.values()].filter((a) => a.questionId === q.id),
    },
    Answer: { author: (a) => store.users.get(a.authorId) ?? null },
    // Field level: anyone may see a profile, only its owner the email. Refused, the field is null and
    // the response carries a FORBIDDEN (or UNAUTHENTICATED) error for it.
    User: { email: guard({ action: 'read_email', resource: (user) => ({ kind: 'user', id: user.id }) }, (user) => user.email) },
  };

  const schema = buildSchema(typeDefs);
  for (const [typeName, fields] of Object.entries(resolvers)) {
    const type = /** @type {import('graphql').GraphQLObjectType} */ (schema.getType(typeName));
    for (const [fieldName, resolve] of Object.entries(fields)) type.getFields()[fieldName].resolve = resolve;
  }
  return schema;
}

/**
 * @param {{ gatehouse: Gatehouse, fail?: 'closed' | 'open', logger?: { warn: (m: string) => void } }} options
 */
function createApp({ gatehouse, fail = 'closed', logger }) {
  const store = createStore();
  const schema = createSchema(gatehouse, store, fail);
  const app = express();
  app.use(express.json());

  // --- REST: the middleware decides before the handler runs -------------------------------------------
  const authorize = (action, resource) => gatehouse.express({ action, resource, fail, logger });

  app.get('/api/questions/:id', authorize('read', (req) => ({ kind: 'question', id: req.params.id })), (req, res) => {
    const question = store.questions.get(req.params.id);
    if (!question) return res.status(404).json({ error: 'not_found' });
    res.json(question);
  });

  // The author comes from our own data, never from the caller: the rule compares it with the token's user.
  app.delete(
    '/api/questions/:id',
    authorize('delete', (req) => {
      const question = store.questions.get(req.params.id);
      return { kind: 'question', id: req.params.id, attributes: question ? { author_id: question.authorId } : {} };
    }),
    (req, res) => {
      if (!store.questions.delete(req.params.id)) return res.status(404).json({ error: 'not_found' });
      res.status(204).end();
    },
  );

  // A plain call inside a handler: the profile is public, the email only for its owner.
  app.get('/api/users/:id', authorize('read', (req) => ({ kind: 'user', id: req.params.id })), async (req, res, next) => {
    try {
      const user = store.users.get(req.params.id);
      if (!user) return res.status(404).json({ error: 'not_found' });
      const token = bearerToken(req.headers.authorization);
      const { allowed } = await gatehouse.check({ token, action: 'read_email', resource: { kind: 'user', id: user.id } });
      res.json(allowed ? user : { id: user.id, name: user.name });
    } catch (err) {
      next(err);
    }
  });

  // --- GraphQL: one POST endpoint; each guarded resolver decides for itself -------------------------
  app.post('/graphql', async (req, res) => {
    // The token is optional here (public fields are readable anonymously) but never garbled.
    const header = req.headers.authorization;
    const token = bearerToken(header);
    if (header !== undefined && !token) {
      return res.status(401).json({ errors: [{ message: 'malformed Authorization header: expected Bearer <token>', extensions: { code: 'UNAUTHENTICATED' } }] });
    }
    const { query, variables, operationName } = req.body ?? {};
    if (typeof query !== 'string') return res.status(400).json({ errors: [{ message: 'a query is required' }] });
    const result = await graphql({ schema, source: query, variableValues: variables, operationName, contextValue: { token } });
    res.json(result);
  });

  // Errors no route answered: never echo the request (it may hold a token).
  app.use((err, req, res, _next) => {
    (logger ?? console).warn(`${req.method} ${req.path} failed: ${err.message}`);
    res.status(500).json({ error: 'internal' });
  });
  return app;
}

/**
 * Starts the example on `port` (0: any free port) and resolves once it listens.
 * @param {{ gatehouseAddress: string, port?: number, host?: string, fail?: 'closed' | 'open',
 *   timeoutMs?: number, retries?: number, logger?: { warn: (m: string) => void } }} options
 * @returns {Promise<{ url: string, gatehouse: Gatehouse, close: () => Promise<void> }>}
 */
function start({ gatehouseAddress, port = 0, host = '127.0.0.1', fail = 'closed', timeoutMs, retries, logger }) {
  const gatehouse = new Gatehouse(gatehouseAddress, { timeoutMs, retries, logger });
  const app = createApp({ gatehouse, fail, logger });
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, (err) => {
      if (err) return reject(err);
      const { port: bound } = /** @type {import('node:net').AddressInfo} */ (server.address());
      resolve({
        url: `http://${host}:${bound}`,
        gatehouse,
        close: () =>
          new Promise((done) => {
            gatehouse.close();
            server.closeAllConnections?.();
            server.close(() => done());
          }),
      });
    });
  });
}

module.exports = { createApp, createSchema, start };

if (require.main === module) {
  const fail = process.env.GATEHOUSE_FAIL === 'open' ? 'open' : 'closed';
  start({ gatehouseAddress: process.env.GATEHOUSE_ADDR ?? '127.0.0.1:50051', port: Number(process.env.PORT ?? 3000), fail }).then(
    ({ url }) => console.log(`example listening on ${url} (gatehouse fail mode: ${fail})`),
    (err) => {
      console.error(`example failed to start: ${err.message}`);
      process.exit(1);
    },
  );
}

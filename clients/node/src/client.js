'use strict';
// The gatehouse client: one gRPC channel, promise methods, typed errors, and retries that stay inside
// one deadline per call.

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { fromGrpcError } = require('./errors');
const {
  toStruct,
  fromTimestamp,
  toResource,
  toPrincipalInput,
  fromPrincipal,
} = require('./convert');

/** @typedef {import('./convert').Resource} Resource */
/** @typedef {import('./convert').PrincipalInput} PrincipalInput */
/** @typedef {import('./convert').Principal} Principal */

/**
 * Who a decision is for: a user's `token`, `anonymous: true`, or a `principal` your backend describes
 * (sent with the client's server token).
 * @typedef {{ token?: string, anonymous?: boolean, principal?: PrincipalInput }} Caller
 * @typedef {{ allowed: boolean, rule: string, reason: string, dryRun: boolean, explanation: object | null }} Decision
 * @typedef {{ timeoutMs?: number }} CallOptions
 */

const PROTO_ROOT = path.join(__dirname, '..', 'proto');

// Loaded once per process: every client shares the parsed service definition.
let service;
function gatehouseService() {
  if (!service) {
    const definition = protoLoader.loadSync('gatehouse/v1/gatehouse.proto', {
      // The well-known imports (struct.proto, timestamp.proto) resolve from protobufjs' bundled
      // copies when they are not found under these directories.
      includeDirs: [PROTO_ROOT],
      keepCase: false,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    service = /** @type {any} */ (grpc.loadPackageDefinition(definition)).gatehouse.v1.Gatehouse;
  }
  return service;
}

const DEFAULT_TIMEOUT_MS = 1000;
const DEFAULT_RETRIES = 2;
const BACKOFF_BASE_MS = 50;
const BACKOFF_MAX_MS = 1000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * "Equal jitter": half the exponential step is fixed so a retry never fires at once, the other half
 * random so many clients losing the same sidecar do not come back in lockstep.
 * @param {number} attempt 1 for the wait after the first failure
 */
function backoffMs(attempt) {
  const step = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
  return step / 2 + Math.random() * (step / 2);
}

/** `http://host:port` (as the gatehouse CLI takes it) or `host:port`. */
function grpcTarget(address) {
  if (typeof address !== 'string' || address === '') throw new TypeError('the gatehouse address is required, e.g. 127.0.0.1:50051');
  return address.replace(/^https?:\/\//, '').replace(/\/+$/, '');
}

class Gatehouse {
  /**
   * @param {string} address `host:port` of gatehouse's gRPC listener (`http://` and `https://` are accepted)
   * @param {object} [options]
   * @param {string} [options.serverToken] a server token, sent as `authorization: Bearer ...` for
   *   issueToken and for decisions about a described `principal`; never with anything else
   * @param {number} [options.timeoutMs] the deadline of each call, retries included (default 1000)
   * @param {number} [options.retries] extra attempts after UNAVAILABLE (default 2); nothing else is retried
   * @param {grpc.ChannelCredentials} [options.credentials] default: TLS for `https://`, else plain text
   * @param {Record<string, unknown>} [options.channelOptions] extra grpc-js channel options
   * @param {{ warn: (message: string) => void }} [options.logger] where fail-open warnings go (default console)
   */
  constructor(address, options = {}) {
    const target = grpcTarget(address);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retries = options.retries ?? DEFAULT_RETRIES;
    if (!(this.timeoutMs > 0)) throw new TypeError('timeoutMs must be a positive number of milliseconds');
    if (!(Number.isInteger(this.retries) && this.retries >= 0)) throw new TypeError('retries must be a non-negative integer');
    this.logger = options.logger ?? console;
    // Kept off the instance's enumerable properties so a logged or inspected client shows no token.
    Object.defineProperty(this, '_serverToken', { value: options.serverToken ?? '', enumerable: false });
    const credentials =
      options.credentials ?? (/^https:\/\//.test(address) ? grpc.credentials.createSsl() : grpc.credentials.createInsecure());
    const Service = gatehouseService();
    this._stub = new Service(target, credentials, {
      // A sidecar on the same host comes back within moments of a restart: reconnect quickly rather
      // than after grpc-js' default of a second or more, so a retry can find it.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': BACKOFF_MAX_MS,
      ...(options.channelOptions ?? {}),
    });
  }

  /**
   * May the caller perform `action` on `resource`? A denial is `{ allowed: false, rule, reason }`.
   * @param {Caller & { action: string, resource: Resource, context?: Record<string, unknown>, explain?: boolean }} request
   * @param {CallOptions} [options]
   * @returns {Promise<Decision & { principal: Principal | null, policyRevision: string }>}
   */
  async check(request, options) {
    const res = await this._call(
      'Check',
      {
        ...this._caller(request),
        action: request.action ?? '',
        resource: toResource(request.resource),
        context: toStruct(request.context),
        explain: Boolean(request.explain),
      },
      sending(request),
      options,
    );
    return { ...decision(res), principal: fromPrincipal(res.principal), policyRevision: res.policyRevision };
  }

  /**
   * Up to 1,000 decisions for one caller, answered in the order of `items`.
   * @param {Caller & { items: { action: string, resource: Resource, context?: Record<string, unknown> }[], explain?: boolean }} request
   * @param {CallOptions} [options]
   * @returns {Promise<{ results: Decision[], principal: Principal | null, policyRevision: string }>}
   */
  async checkBatch(request, options) {
    const items = (request.items ?? []).map((item) => ({
      action: item.action ?? '',
      resource: toResource(item.resource),
      context: toStruct(item.context),
    }));
    const res = await this._call(
      'CheckBatch',
      { ...this._caller(request), items, explain: Boolean(request.explain) },
      sending(request),
      options,
    );
    return { results: res.results.map(decision), principal: fromPrincipal(res.principal), policyRevision: res.policyRevision };
  }

  /**
   * The actions of the resource's kind that the caller may perform on it.
   * @param {Caller & { resource: Resource, context?: Record<string, unknown> }} request
   * @param {CallOptions} [options]
   * @returns {Promise<{ actions: string[], principal: Principal | null, policyRevision: string }>}
   */
  async allowedActions(request, options) {
    const res = await this._call(
      'AllowedActions',
      { ...this._caller(request), resource: toResource(request.resource), context: toStruct(request.context) },
      sending(request),
      options,
    );
    return { actions: res.actions, principal: fromPrincipal(res.principal), policyRevision: res.policyRevision };
  }

  /**
   * For each of up to 1,000 resources, the actions the caller may perform on it (optionally only among
   * `actions`): what a screen listing many items needs in one call.
   * @param {Caller & { resources: Resource[], actions?: string[], context?: Record<string, unknown> }} request
   * @param {CallOptions} [options]
   * @returns {Promise<{ resources: { kind: string, id: string, actions: string[] }[], principal: Principal | null, policyRevision: string }>}
   */
  async capabilities(request, options) {
    const res = await this._call(
      'Capabilities',
      {
        ...this._caller(request),
        resources: (request.resources ?? []).map(toResource),
        actions: request.actions ?? [],
        context: toStruct(request.context),
      },
      sending(request),
      options,
    );
    return {
      resources: res.resources.map((r) => ({ kind: r.kind, id: r.id, actions: r.actions })),
      principal: fromPrincipal(res.principal),
      policyRevision: res.policyRevision,
    };
  }

  /**
   * Mints a user token. Needs the client's server token; a user token there is PermissionDenied.
   * @param {{ userId: string, expiresInSeconds?: number, claims?: Record<string, unknown>, roles?: string[], groups?: string[] }} request
   * @param {CallOptions} [options]
   * @returns {Promise<{ token: string, expiresAt: Date | null }>}
   */
  async issueToken(request, options) {
    const res = await this._call(
      'IssueToken',
      {
        userId: request.userId ?? '',
        expiresInSeconds: String(request.expiresInSeconds ?? 0),
        claims: toStruct(request.claims),
        roles: request.roles ?? [],
        groups: request.groups ?? [],
      },
      { serverToken: true, token: '' },
      options,
    );
    return { token: res.token, expiresAt: fromTimestamp(res.expiresAt) };
  }

  /**
   * Verifies a token and returns the principal it identifies; a token that does not verify is
   * Unauthenticated, naming the reason.
   * @param {string} token
   * @param {CallOptions} [options]
   * @returns {Promise<Principal>}
   */
  async verify(token, options) {
    const res = await this._call('Verify', { token: token ?? '' }, { serverToken: false, token }, options);
    return /** @type {Principal} */ (fromPrincipal(res.principal));
  }

  /** Closes the channel; calls after this fail. */
  close() {
    this._stub.close();
  }

  /**
   * Express middleware deciding each request before its handler runs. See src/express.js.
   * @param {import('./express').ExpressGuardOptions} options
   */
  express(options) {
    return require('./express').expressGuard(this, options);
  }

  /**
   * Wraps a GraphQL resolver so it runs only when gatehouse allows it. See src/graphql.js.
   * @param {import('./graphql').GuardOptions} options
   * @param {Function} resolver
   */
  guard(options, resolver) {
    return require('./graphql').guard(this, options, resolver);
  }

  /** @param {Caller} request */
  _caller(request) {
    return {
      token: request.token ?? '',
      anonymous: Boolean(request.anonymous),
      principal: toPrincipalInput(request.principal),
    };
  }

  /**
   * One call with its retries. Every attempt shares the deadline fixed here, so retries never stretch
   * a call past `timeoutMs`. Only UNAVAILABLE (nothing decided: the server was not reached or went
   * away) is retried; an answer, including a denial, is final.
   * @param {string} method
   * @param {object} message
   * @param {{ serverToken: boolean, token?: string }} sends whether the server token goes along, and
   *   the user token in the message (both are scrubbed from any error)
   * @param {CallOptions} [options]
   */
  async _call(method, message, sends, options = {}) {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const deadline = Date.now() + timeoutMs;
    const metadata = new grpc.Metadata();
    if (sends.serverToken && this._serverToken) metadata.set('authorization', `Bearer ${this._serverToken}`);
    const secrets = [this._serverToken, sends.token ?? ''];

    for (let attempt = 1; ; attempt++) {
      try {
        return await this._unary(method, message, metadata, deadline);
      } catch (err) {
        const e = /** @type {any} */ (err);
        if (e.code !== grpc.status.UNAVAILABLE || attempt > this.retries) throw fromGrpcError(e, method, secrets, attempt);
        const wait = backoffMs(attempt);
        // No time left for another attempt: report what actually went wrong, not a timeout.
        if (Date.now() + wait >= deadline) throw fromGrpcError(e, method, secrets, attempt);
        await sleep(wait);
      }
    }
  }

  /** @returns {Promise<any>} */
  _unary(method, message, metadata, deadline) {
    return new Promise((resolve, reject) => {
      this._stub[method](message, metadata, { deadline: new Date(deadline) }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }
}

/**
 * The server token goes only where the server needs it: minting tokens and describing a principal.
 * @param {Caller} request
 */
function sending(request) {
  return { serverToken: Boolean(request.principal), token: request.token };
}

/** @returns {Decision} */
function decision(r) {
  return {
    allowed: r.allowed,
    rule: r.rule,
    reason: r.reason,
    dryRun: r.dryRun,
    explanation: r.explanation ?? null,
  };
}

module.exports = { Gatehouse };

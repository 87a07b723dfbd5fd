'use strict';
// Express (and Connect-style) middleware: decide each request with gatehouse before its handler runs.
//
// The caller's token is read from one place only, `Authorization: Bearer <token>`, so there is no
// question which of two credentials was checked. The responses are JSON:
//   no or garbled Authorization, or a token gatehouse refuses  401 { error: 'unauthenticated', message }
//   the policy denies                                          403 { error: 'forbidden', reason, rule }
//   gatehouse unreachable or too slow (fail: 'closed')         503 { error: 'unavailable', message }
// With `fail: 'open'` an unreachable gatehouse lets the request through, with a warning in the log.

const { Unauthenticated, Unavailable, DeadlineExceeded } = require('./errors');

// RFC 6750's b64token: what a JWT (and any bearer token) is made of.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * The bearer token of an `Authorization` header value, or null when there is none or it is garbled.
 * @param {string | undefined} header
 * @returns {string | null}
 */
function bearerToken(header) {
  if (typeof header !== 'string') return null;
  const match = BEARER.exec(header);
  return match ? match[1] : null;
}

/**
 * @typedef {import('./convert').Resource} Resource
 * @typedef {object} ExpressGuardOptions
 * @property {string | ((req: any) => string)} action the action, or a function of the request
 * @property {(req: any) => Resource | Promise<Resource>} resource the resource the request acts on
 * @property {(req: any) => Record<string, unknown> | undefined} [context] facts about the call
 * @property {'closed' | 'open'} [fail] what an unreachable gatehouse means: 503 (default) or allow
 * @property {number} [timeoutMs] the decision's deadline, retries included (default: the client's)
 * @property {{ warn: (message: string) => void }} [logger] where fail-open warnings go (default: the client's)
 */

/**
 * @param {import('./client').Gatehouse} client
 * @param {ExpressGuardOptions} options
 */
function expressGuard(client, options) {
  const { action, resource, context, fail = 'closed', timeoutMs } = options ?? {};
  if (!action) throw new TypeError('gatehouse.express needs an action');
  if (typeof resource !== 'function') throw new TypeError('gatehouse.express needs resource: (req) => ({ kind, id, attributes })');
  if (fail !== 'closed' && fail !== 'open') throw new TypeError("fail must be 'closed' or 'open'");
  const logger = options.logger ?? client.logger;

  return async function gatehouseMiddleware(req, res, next) {
    const token = bearerToken(req.headers.authorization);
    if (!token) {
      const message = req.headers.authorization === undefined ? 'missing Authorization: Bearer token' : 'malformed Authorization header: expected Bearer <token>';
      return sendJson(res, 401, { error: 'unauthenticated', message }, { 'WWW-Authenticate': 'Bearer' });
    }

    let request;
    try {
      request = {
        token,
        action: typeof action === 'function' ? action(req) : action,
        resource: await resource(req),
        context: context ? context(req) : undefined,
      };
    } catch (err) {
      return next(err); // the application's own lookup failed: its error handler decides
    }

    let decision;
    try {
      decision = await client.check(request, { timeoutMs });
    } catch (err) {
      if (err instanceof Unauthenticated) {
        // The server's reason ("token expired", "bad signature") names no token and helps the caller.
        return sendJson(res, 401, { error: 'unauthenticated', message: `token refused: ${err.details}` }, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
      }
      if (err instanceof Unavailable || err instanceof DeadlineExceeded) {
        if (fail === 'open') {
          // The path without its query string: a query may carry credentials of its own.
          const path = String(req.originalUrl ?? req.url).split('?')[0];
          logger.warn(
            `gatehouse unreachable, allowing ${req.method} ${path} (${request.action} on ${request.resource?.kind} ${request.resource?.id ?? ''}) because fail is 'open': ${err.message}`,
          );
          req.gatehouse = { allowed: true, failedOpen: true };
          return next();
        }
        return sendJson(res, 503, { error: 'unavailable', message: 'the authorization service is unavailable' });
      }
      return next(err); // an invalid request is a bug in the application's resource mapping
    }

    if (!decision.allowed) {
      return sendJson(res, 403, { error: 'forbidden', reason: decision.reason, rule: decision.rule });
    }
    // Handlers may read who was allowed and by which rule.
    req.gatehouse = decision;
    return next();
  };
}

function sendJson(res, statusCode, body, headers = {}) {
  res.statusCode = statusCode;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.end(JSON.stringify(body));
}

module.exports = { expressGuard, bearerToken };

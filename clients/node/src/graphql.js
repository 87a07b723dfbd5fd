'use strict';
// A GraphQL resolver guard: the wrapped resolver runs only when gatehouse allows the caller the action
// on the resource. Works for a query or mutation field and for a single field of a type (a user's
// `email`), since both are resolvers.
//
// The caller's token is read from the GraphQL context (`context.token` by default); a request without
// one is decided for the anonymous principal, so public fields stay public. Refusals are GraphQL
// errors with `extensions.code`:
//   UNAUTHENTICATED  no token and the anonymous caller is denied, or a token gatehouse refuses
//   FORBIDDEN        the policy denies the signed-in caller (`extensions.reason`, `extensions.rule`)
//   UNAVAILABLE      gatehouse is unreachable or too slow and `fail` is 'closed' (the default)

const { Unauthenticated, Unavailable, DeadlineExceeded } = require('./errors');

/**
 * @typedef {import('./convert').Resource} Resource
 * @typedef {object} GuardOptions
 * @property {string | ((parent: any, args: any, context: any, info: any) => string)} action
 * @property {(parent: any, args: any, context: any, info: any) => Resource | Promise<Resource>} resource
 * @property {(parent: any, args: any, context: any, info: any) => Record<string, unknown> | undefined} [context]
 * @property {(context: any) => string | null | undefined} [token] where the token is (default: `context.token`)
 * @property {'closed' | 'open'} [fail] what an unreachable gatehouse means: an error (default) or run the resolver
 * @property {number} [timeoutMs] the decision's deadline, retries included (default: the client's)
 * @property {{ warn: (message: string) => void }} [logger] where fail-open warnings go (default: the client's)
 */

/**
 * @param {import('./client').Gatehouse} client
 * @param {GuardOptions} options
 * @param {(parent: any, args: any, context: any, info: any) => any} resolver
 */
function guard(client, options, resolver) {
  // Required here, not at the top, so that the package works without graphql for plain calls.
  const { GraphQLError } = require('graphql');
  const { action, resource, context, fail = 'closed', timeoutMs } = options ?? {};
  if (!action) throw new TypeError('guard needs an action');
  if (typeof resource !== 'function') throw new TypeError('guard needs resource: (parent, args, context, info) => ({ kind, id, attributes })');
  if (typeof resolver !== 'function') throw new TypeError('guard needs the resolver to wrap');
  if (fail !== 'closed' && fail !== 'open') throw new TypeError("fail must be 'closed' or 'open'");
  const tokenOf = options.token ?? ((ctx) => ctx?.token);
  const logger = options.logger ?? client.logger;

  return async function guardedResolver(parent, args, ctx, info) {
    const token = tokenOf(ctx) || undefined;
    const request = {
      ...(token ? { token } : { anonymous: true }),
      action: typeof action === 'function' ? action(parent, args, ctx, info) : action,
      resource: await resource(parent, args, ctx, info),
      context: context ? context(parent, args, ctx, info) : undefined,
    };
    const field = info ? `${info.parentType.name}.${info.fieldName}` : 'field';

    let decision;
    try {
      decision = await client.check(request, { timeoutMs });
    } catch (err) {
      if (err instanceof Unauthenticated) {
        throw new GraphQLError(`token refused: ${err.details}`, { extensions: { code: 'UNAUTHENTICATED' } });
      }
      if (err instanceof Unavailable || err instanceof DeadlineExceeded) {
        if (fail === 'open') {
          logger.warn(`gatehouse unreachable, resolving ${field} (${request.action} on ${request.resource?.kind} ${request.resource?.id ?? ''}) because fail is 'open': ${err.message}`);
          return resolver(parent, args, ctx, info);
        }
        throw new GraphQLError('the authorization service is unavailable', { extensions: { code: 'UNAVAILABLE' } });
      }
      throw err; // an invalid request is a bug in the resource mapping; graphql reports it as is
    }

    if (!decision.allowed) {
      // An anonymous caller who is refused could be allowed after signing in; a signed-in one could not.
      const code = token ? 'FORBIDDEN' : 'UNAUTHENTICATED';
      throw new GraphQLError(decision.reason, { extensions: { code, rule: decision.rule, reason: decision.reason } });
    }
    return resolver(parent, args, ctx, info);
  };
}

module.exports = { guard };

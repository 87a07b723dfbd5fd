'use strict';
// Conversions between plain JavaScript values and the protobuf shapes proto-loader uses for
// google.protobuf.Struct/Value and Timestamp, and the gatehouse messages built from them. Callers
// pass and receive plain objects: `attributes: { author_id: 'alice' }`, `expiresAt: Date`.

/**
 * @typedef {{ kind: string, id?: string, attributes?: Record<string, unknown> }} Resource
 * @typedef {{ userId: string, roles?: string[], groups?: string[],
 *   channelRoles?: Record<string, string>, claims?: Record<string, unknown> }} PrincipalInput
 * @typedef {{ kind: string, userId: string, roles: string[], groups: string[],
 *   scope: { resource: string, action: string, feedId: string, userId: string } | null,
 *   claims: Record<string, unknown>, issuedAt: Date | null, expiresAt: Date | null,
 *   channelRoles: Record<string, string>, issuer: string }} Principal
 */

/** @param {unknown} value */
function toValue(value) {
  if (value === null || value === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (typeof value === 'number') {
    // Struct numbers are doubles; NaN and the infinities have no JSON form and would not round-trip.
    if (!Number.isFinite(value)) throw new TypeError(`cannot send the number ${value} in a Struct`);
    return { numberValue: value };
  }
  if (typeof value === 'bigint') return { numberValue: Number(value) };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  if (typeof value === 'object') {
    // Dates and other objects with a JSON form travel as that form, as JSON.stringify would send them.
    if (typeof (/** @type {any} */ (value).toJSON) === 'function') return toValue(/** @type {any} */ (value).toJSON());
    return { structValue: toStruct(/** @type {Record<string, unknown>} */ (value)) };
  }
  throw new TypeError(`cannot send a ${typeof value} in a Struct`);
}

/** @param {Record<string, unknown> | null | undefined} object */
function toStruct(object) {
  if (object === null || object === undefined) return null;
  if (typeof object !== 'object' || Array.isArray(object)) throw new TypeError('expected a plain object');
  /** @type {Record<string, unknown>} */
  const fields = {};
  for (const [key, value] of Object.entries(object)) {
    // Like JSON: a key holding undefined is left out rather than sent as null.
    if (value !== undefined) fields[key] = toValue(value);
  }
  return { fields };
}

/** @param {any} value @returns {unknown} */
function fromValue(value) {
  if (!value) return null;
  switch (value.kind) {
    case 'stringValue':
      return value.stringValue;
    case 'numberValue':
      return value.numberValue;
    case 'boolValue':
      return value.boolValue;
    case 'structValue':
      return fromStruct(value.structValue);
    case 'listValue':
      return (value.listValue?.values ?? []).map(fromValue);
    default:
      return null;
  }
}

/** @param {any} struct @returns {Record<string, unknown>} */
function fromStruct(struct) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const [key, value] of Object.entries(struct?.fields ?? {})) out[key] = fromValue(value);
  return out;
}

/** @param {any} timestamp @returns {Date | null} */
function fromTimestamp(timestamp) {
  if (!timestamp) return null;
  return new Date(Number(timestamp.seconds) * 1000 + Math.floor((timestamp.nanos ?? 0) / 1e6));
}

/** @param {Resource} resource */
function toResource(resource) {
  if (!resource || typeof resource !== 'object') return null;
  return { kind: resource.kind ?? '', id: resource.id ?? '', attributes: toStruct(resource.attributes) };
}

/** @param {PrincipalInput | undefined} principal */
function toPrincipalInput(principal) {
  if (!principal) return null;
  return {
    userId: principal.userId ?? '',
    roles: principal.roles ?? [],
    groups: principal.groups ?? [],
    channelRoles: principal.channelRoles ?? {},
    claims: toStruct(principal.claims),
  };
}

/** @param {any} p @returns {Principal | null} */
function fromPrincipal(p) {
  if (!p) return null;
  return {
    kind: p.kind,
    userId: p.userId,
    roles: p.roles ?? [],
    groups: p.groups ?? [],
    scope: p.scope ? { resource: p.scope.resource, action: p.scope.action, feedId: p.scope.feedId, userId: p.scope.userId } : null,
    claims: fromStruct(p.claims),
    issuedAt: fromTimestamp(p.issuedAt),
    expiresAt: fromTimestamp(p.expiresAt),
    channelRoles: { ...(p.channelRoles ?? {}) },
    issuer: p.issuer ?? '',
  };
}

module.exports = { toStruct, fromStruct, fromTimestamp, toResource, toPrincipalInput, fromPrincipal };

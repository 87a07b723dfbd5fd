'use strict';
// gatehouse-client: ask the gatehouse sidecar "may this caller do this?" from Node.js.

const { Gatehouse } = require('./client');
const errors = require('./errors');
const { bearerToken } = require('./express');

module.exports = {
  Gatehouse,
  GatehouseError: errors.GatehouseError,
  Unauthenticated: errors.Unauthenticated,
  PermissionDenied: errors.PermissionDenied,
  InvalidRequest: errors.InvalidRequest,
  Unavailable: errors.Unavailable,
  DeadlineExceeded: errors.DeadlineExceeded,
  bearerToken,
};

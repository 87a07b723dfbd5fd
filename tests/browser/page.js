// Asks gatehouse, as the page's own user, what that user may do with a few Feeds resources, once over
// gRPC-Web and once over the JSON API, and shows one button per allowed action. Then it tries what a
// page must not be able to do (name another principal, call IssueToken) and shows how it was refused.
//
// Parameters, in the query or the fragment:
//   token      the user's token (sent only in the Authorization header)
//   gatehouse  gatehouse's HTTP listener, e.g. http://127.0.0.1:8080
//   user       the user's id: the actor of the activities it would write
//
// What the page shows is marked up for tests/browser/drive.py: each section's data-state (loading,
// ready, error), <button data-resource="kind:id" data-action="...">, each refusal's data-outcome
// (refused, answered, failed) and data-detail, and #status with one line per error and data-state done.
'use strict';

const params = new URLSearchParams(location.search.slice(1) || location.hash.slice(1));
const token = params.get('token') || '';
const gatehouse = (params.get('gatehouse') || '').replace(/\/+$/, '');
const user = params.get('user') || '';

// Resources as the Feeds policy declares them, with the attributes its rules read: a feed is
// group:owner, a reaction belongs to attributes.user_id, a user is its id.
const RESOURCES = [
  { kind: 'feed', id: 'user:tommaso' },
  { kind: 'feed', id: 'user:jack' },
  { kind: 'feed', id: 'timeline:jack' },
  { kind: 'feed', id: 'notification:tommaso' },
  { kind: 'reactions', id: 'reaction-by-tommaso', attributes: { user_id: 'tommaso' } },
  { kind: 'reactions', id: 'reaction-by-jack', attributes: { user_id: 'jack' } },
  { kind: 'users', id: 'tommaso' },
  { kind: 'users', id: 'jack' },
];
// The activities the page would write are the user's own (the policy's no-impersonation rule).
const CONTEXT = { actor: user };
const OTHER_USER = user === 'jack' ? 'tommaso' : 'jack';

class CallError extends Error {
  constructor(message, { http = null, grpcStatus = null, code = null } = {}) {
    super(message);
    this.http = http;
    this.grpcStatus = grpcStatus;
    this.code = code;
  }
}

// --- protobuf.Struct, which protobufjs leaves as its fields ------------------------------------------
function toValue(v) {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v) };
}
function toStruct(object) {
  const fields = {};
  for (const [k, v] of Object.entries(object || {})) fields[k] = toValue(v);
  return { fields };
}

// --- gRPC-Web, framed by hand ------------------------------------------------------------------------
function frame(bytes) {
  const out = new Uint8Array(5 + bytes.length);
  out[0] = 0x00; // uncompressed data
  new DataView(out.buffer).setUint32(1, bytes.length, false);
  out.set(bytes, 5);
  return out;
}

function parseTrailers(bytes) {
  const trailers = {};
  for (const line of new TextDecoder().decode(bytes).split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return trailers;
}

// The data frame and the trailer frame of an answer.
function parseFrames(bytes) {
  let message = null;
  let trailers = null;
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 5) throw new CallError('the answer ends inside a frame header');
    const flag = bytes[at];
    const length = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0, false);
    const payload = bytes.subarray(at + 5, at + 5 + length);
    if (payload.length !== length) throw new CallError('the answer ends inside a frame');
    if (flag === 0x80) {
      trailers = parseTrailers(payload);
    } else if (flag === 0x00) {
      if (message !== null) throw new CallError('more than one message in a unary answer');
      message = payload;
    } else {
      throw new CallError(`unexpected frame flag 0x${flag.toString(16)}`);
    }
    at += 5 + length;
  }
  return { message, trailers };
}

async function grpcWeb(root, method, requestName, responseName, request) {
  const Request = root.lookupType(requestName);
  const Response = root.lookupType(responseName);
  const body = frame(Request.encode(Request.fromObject(request)).finish());
  const response = await fetch(`${gatehouse}/gatehouse.v1.Gatehouse/${method}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/grpc-web+proto',
      'x-grpc-web': '1',
      authorization: `Bearer ${token}`,
    },
    body,
  });
  if (!response.ok) throw new CallError(`HTTP ${response.status}`, { http: response.status });
  const { message, trailers } = parseFrames(new Uint8Array(await response.arrayBuffer()));
  // A trailers-only answer carries the status in the headers.
  const header = (name) => (trailers && name in trailers ? trailers[name] : response.headers.get(name));
  const status = header('grpc-status');
  if (status === null) throw new CallError('the answer has no grpc-status');
  if (status !== '0') {
    const text = decodeURIComponent(header('grpc-message') || '');
    throw new CallError(`gRPC status ${status}: ${text}`, { grpcStatus: Number(status) });
  }
  if (message === null) throw new CallError('gRPC status 0 without a message');
  return Response.toObject(Response.decode(message), { arrays: true, defaults: true });
}

function capabilitiesOverGrpcWeb(root, extra = {}) {
  const request = {
    resources: RESOURCES.map((r) => ({ kind: r.kind, id: r.id, attributes: toStruct(r.attributes) })),
    context: toStruct(CONTEXT),
    ...extra,
  };
  return grpcWeb(root, 'Capabilities', 'gatehouse.v1.CapabilitiesRequest', 'gatehouse.v1.CapabilitiesResponse', request);
}

// --- JSON --------------------------------------------------------------------------------------------
async function postJson(path, body) {
  const response = await fetch(`${gatehouse}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    const code = answer && answer.code;
    const message = answer && answer.message;
    throw new CallError(`HTTP ${response.status} ${code}: ${message}`, { http: response.status, code });
  }
  return answer;
}

function capabilitiesOverJson(extra = {}) {
  return postJson('/v1/capabilities', { resources: RESOURCES, context: CONTEXT, ...extra });
}

// --- Showing ------------------------------------------------------------------------------------------
function el(tag, attributes = {}, text = '') {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

const errors = [];
function report(where, error) {
  errors.push(`${where}: ${error instanceof CallError ? error.message : String(error)}`);
  document.getElementById('status').textContent = errors.join('\n');
}

// One row per resource the server answered for, one button per action it allows.
function showCapabilities(sectionId, answer) {
  const section = document.getElementById(sectionId);
  for (const r of answer.resources) {
    const key = `${r.kind}:${r.id}`;
    const row = el('div', { class: 'resource', 'data-resource': key });
    row.append(el('span', { class: 'name' }, `${r.kind} ${r.id}`));
    for (const action of r.actions) row.append(el('button', { 'data-resource': key, 'data-action': action }, action));
    if (r.actions.length === 0) row.append(el('span', { class: 'none' }, 'nothing allowed'));
    section.append(row);
  }
  section.dataset.state = 'ready';
}

async function showSection(sectionId, ask) {
  try {
    showCapabilities(sectionId, await ask());
  } catch (error) {
    document.getElementById(sectionId).dataset.state = 'error';
    report(sectionId, error);
  }
}

// A call that must be refused: `refused` with how, `answered` if it was not, `failed` if no answer
// could be read at all.
// `blockable`: a call the browser itself may block (no CORS answer for a path gatehouse does not
// serve to pages), which is then the expected refusal rather than a page error.
async function showRefusal(id, label, ask, blockable = false) {
  const item = document.getElementById(id);
  try {
    await ask();
    item.dataset.outcome = 'answered';
    item.dataset.detail = 'answered';
  } catch (error) {
    const refused = error instanceof CallError && (error.http !== null || error.grpcStatus !== null);
    if (!refused && blockable && error instanceof TypeError) {
      item.dataset.outcome = 'blocked';
      item.dataset.detail = error.message;
      item.textContent = `${label}: blocked by the browser (${error.message})`;
      return;
    }
    item.dataset.outcome = refused ? 'refused' : 'failed';
    item.dataset.detail = error.message;
    if (!refused) report(id, error);
  }
  item.textContent = `${label}: ${item.dataset.outcome} (${item.dataset.detail})`;
}

async function main() {
  document.getElementById('user').textContent = user || '?';
  document.getElementById('asked').textContent = `Capabilities asked of ${gatehouse} with ${user}'s token.`;
  let root = null;
  try {
    if (!token || !gatehouse) throw new Error('give ?token=...&gatehouse=...&user=...');
    root = await protobuf.load('gatehouse.proto');
  } catch (error) {
    report('setup', error);
  }
  if (root) {
    await showSection('grpc-web', () => capabilitiesOverGrpcWeb(root));
    await showSection('json', () => capabilitiesOverJson());
    const principal = { user_id: OTHER_USER };
    await showRefusal('principal-json', 'JSON with principal in the body', () => capabilitiesOverJson({ principal }));
    await showRefusal('principal-grpc-web', 'gRPC-Web with principal in the message', () =>
      capabilitiesOverGrpcWeb(root, { principal: { userId: OTHER_USER } }),
    );
    await showRefusal('issue-token', 'gRPC-Web IssueToken', () =>
      grpcWeb(root, 'IssueToken', 'gatehouse.v1.IssueTokenRequest', 'gatehouse.v1.IssueTokenResponse', {
        userId: OTHER_USER,
      }),
      true,
    );
  } else {
    for (const id of ['grpc-web', 'json']) document.getElementById(id).dataset.state = 'error';
  }
  document.getElementById('status').dataset.state = 'done';
}

main();

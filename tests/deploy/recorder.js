// A stand-in upstream app for the deployment tests (tests/it/deploy.rs) and scripts/deploy-measure.sh: it
// answers every request with a Stream-shaped JSON body and records what reached it (method, path,
// headers), so a test can tell what Envoy let through and with which x-gatehouse-* headers.
//
// Usage: node recorder.js APP_ADDR RECORDS_ADDR      (each HOST:PORT)
//
// APP_ADDR takes the traffic (Envoy's upstream); GET /requests on RECORDS_ADDR returns everything
// recorded so far as a JSON array (the first 10,000 requests: under load, as in scripts/deploy-measure.sh,
// the rest are answered but not kept). Plain Node.js, no packages: the tests pack it with the node binary
// into an image of its own.
'use strict';

const http = require('http');

function address(text) {
  const match = /^(.+):(\d+)$/.exec(text || '');
  if (!match) {
    throw new Error('usage: recorder.js APP_ADDR RECORDS_ADDR (HOST:PORT each)');
  }
  return { host: match[1], port: Number(match[2]) };
}

const app = address(process.argv[2]);
const records = address(process.argv[3]);
const KEEP = 10000;
const seen = [];
const reply = JSON.stringify({ results: [], next: '', duration: '0.01ms' });

http
  .createServer((request, response) => {
    const headers = {};
    for (let i = 0; i < request.rawHeaders.length; i += 2) {
      const name = request.rawHeaders[i].toLowerCase();
      (headers[name] = headers[name] || []).push(request.rawHeaders[i + 1]);
    }
    if (seen.length < KEEP) {
      seen.push({ method: request.method, path: request.url, headers });
    }
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(reply);
    });
  })
  .listen(app.port, app.host);

http
  .createServer((request, response) => {
    const found = request.method === 'GET' && request.url === '/requests';
    response.writeHead(found ? 200 : 404, { 'content-type': 'application/json' });
    response.end(found ? JSON.stringify(seen) : '{}');
  })
  .listen(records.port, records.host);

process.on('SIGTERM', () => process.exit(0));
console.error(`recorder: app on ${process.argv[2]}, records on ${process.argv[3]}`);

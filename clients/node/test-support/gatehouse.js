'use strict';
// Starts real gatehouse servers for the tests: the binary named by GATEHOUSE_BIN, on a free loopback
// port, with a fresh secret and a temporary copy of a policy directory. Kept outside test/ so that
// `node --test clients/node/test/` does not run it as a test file.

const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const EXAMPLE_POLICIES = path.join(__dirname, '..', 'examples', 'policies');
const START_TIMEOUT_MS = 20_000;

/** The gatehouse binary, or a clear failure naming what to set. */
function gatehouseBin() {
  const bin = process.env.GATEHOUSE_BIN;
  if (!bin) {
    throw new Error('GATEHOUSE_BIN is not set: run the tests as GATEHOUSE_BIN=/path/to/gatehouse node --test clients/node/test/');
  }
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(`GATEHOUSE_BIN=${bin} is not an executable file`);
  }
  return path.resolve(bin);
}

/** The environment without any GATEHOUSE_* setting of the developer's shell, plus `extra`. */
function cleanEnv(extra) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('GATEHOUSE_')) env[key] = value;
  return { ...env, ...extra };
}

/**
 * Starts `gatehouse serve` and resolves once it listens and accepts connections.
 * @param {{ policyDir?: string }} [options]
 */
async function startGatehouse({ policyDir = EXAMPLE_POLICIES } = {}) {
  const bin = gatehouseBin();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-node-'));
  const policies = path.join(workDir, 'policies');
  fs.cpSync(policyDir, policies, { recursive: true });
  const secret = crypto.randomBytes(32).toString('hex');

  /** Mints a token locally with the server's secret, as `gatehouse token issue` does. */
  const mint = (args, key = secret) =>
    execFileSync(bin, ['token', 'issue', ...args], { env: cleanEnv({ GATEHOUSE_API_SECRET: key }), encoding: 'utf8' }).trim();

  const server = {
    address: '',
    secret,
    serverToken: mint(['--server']),
    /** A user token for `userId` with `roles`. */
    userToken: (userId, roles = []) => mint(['--user', userId, ...roles.flatMap((role) => ['--role', role])]),
    /** A well-formed token signed with a secret the server does not know. */
    foreignToken: (userId) => mint(['--user', userId], crypto.randomBytes(32).toString('hex')),
    process: /** @type {import('node:child_process').ChildProcess | null} */ (null),
    /** Stops the server; resolves once the process is gone. */
    stop: async () => {
      const child = server.process;
      server.process = null;
      if (child) await stopProcess(child);
    },
    /** Starts the server again on the same address, as after a restart. */
    restart: async () => {
      await server.stop();
      server.process = await launch(bin, server.address, policies, secret, (address) => (server.address = address));
    },
    /** Stops the server and removes its files. */
    dispose: async () => {
      await server.stop();
      fs.rmSync(workDir, { recursive: true, force: true });
    },
  };
  server.process = await launch(bin, '127.0.0.1:0', policies, secret, (address) => (server.address = address));
  return server;
}

/** Spawns `gatehouse serve`, reads the address it bound from its JSON log, waits until it accepts. */
async function launch(bin, listen, policies, secret, onAddress) {
  const child = spawn(bin, ['serve'], {
    env: cleanEnv({
      GATEHOUSE_LISTEN: listen,
      GATEHOUSE_API_SECRET: secret,
      GATEHOUSE_POLICY_DIR: policies,
      GATEHOUSE_LOG_FORMAT: 'json',
      GATEHOUSE_SHUTDOWN_GRACE: '1s',
    }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = [];
  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gatehouse did not start within ${START_TIMEOUT_MS} ms:\n${log.join('\n')}`));
    }, START_TIMEOUT_MS);
    const lines = readline.createInterface({ input: child.stderr });
    lines.on('line', (line) => {
      log.push(line);
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.fields?.message === 'serving' && entry.fields.listen) {
        clearTimeout(timer);
        resolve(entry.fields.listen);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`gatehouse exited (${signal ?? code}) before serving:\n${log.join('\n')}`));
    });
  });
  // Keep draining the log so the server never blocks on a full pipe.
  child.stderr.resume();
  onAddress(address);
  await waitForConnect(address);
  return child;
}

/** Resolves once a TCP connection to `address` succeeds. */
async function waitForConnect(address) {
  const [host, port] = splitAddress(address);
  const until = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, host, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`gatehouse at ${address} does not accept connections`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** @returns {[string, number]} */
function splitAddress(address) {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at), Number(address.slice(at + 1))];
}

/** A loopback port nothing listens on (bound, then released). */
async function deadPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP server that accepts connections and never says a word: a hung gatehouse. */
async function silentServer() {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return {
    address: `127.0.0.1:${port}`,
    accepted: () => sockets.size,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve(undefined));
      }),
  };
}

module.exports = { startGatehouse, gatehouseBin, deadPort, silentServer, EXAMPLE_POLICIES };

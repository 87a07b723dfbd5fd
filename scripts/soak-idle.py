#!/usr/bin/env python3
"""Holds idle TCP connections open to gatehouse's gRPC and HTTP listeners, for scripts/soak.sh.

Half of the connections go to each listener. On each, half are raw (connected, nothing sent) and half
have spoken once and then wait: on gRPC the HTTP/2 preface and SETTINGS (the server's SETTINGS and
PINGs are acknowledged, and a GOAWAY closes the connection, as real HTTP/2 clients do), on HTTP one
keep-alive `GET /live`. A connection the server closes is counted and opened again 0-3 s later (at
random, so that connections opened together drift apart).
Runs for --duration seconds or until SIGTERM/SIGINT, rewriting --status every second with `key value`
lines. Loopback only.

    scripts/soak-idle.py --grpc 127.0.0.1:50581 --http 127.0.0.1:50582 --count 300 \
        --duration 1800 --status idle.txt
"""

import argparse
import errno
import os
import random
import selectors
import signal
import socket
import struct
import sys
import time

KINDS = ("grpc_raw", "grpc_h2", "http_raw", "http_keepalive")
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, GOAWAY = 4, 6, 7


def frame(kind, flags, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + b"\x00\x00\x00\x00" + payload


class Conn:
    def __init__(self, kind, addr):
        self.kind = kind
        self.addr = addr
        self.sock = None
        self.buf = b""
        self.opened = 0.0
        self.reopen_at = 0.0

    def open(self):
        sock = socket.create_connection(self.addr, timeout=5)
        sock.setblocking(False)
        self.sock, self.buf, self.opened = sock, b"", time.monotonic()
        if self.kind == "grpc_h2":
            sock.sendall(H2_PREFACE + frame(SETTINGS, 0))
        elif self.kind == "http_keepalive":
            sock.sendall(b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")

    def on_data(self, data):
        """Acknowledges HTTP/2 SETTINGS and PINGs; False on GOAWAY. Anything else is ignored."""
        if self.kind != "grpc_h2":
            return True
        self.buf += data
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                break
            kind, flags = self.buf[3], self.buf[4]
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            if kind == SETTINGS and not flags & 1:
                self.sock.sendall(frame(SETTINGS, 1))
            elif kind == PING and not flags & 1:
                self.sock.sendall(frame(PING, 1, payload))
            elif kind == GOAWAY:
                return False
        return True

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def parse_addr(text):
    host, _, port = text.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        sys.exit(f"soak-idle: {text}: loopback addresses only")
    return host.strip("[]"), int(port)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grpc", required=True)
    parser.add_argument("--http", required=True)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--status", required=True)
    args = parser.parse_args()

    stop = False

    def on_signal(_signum, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    grpc, http = parse_addr(args.grpc), parse_addr(args.http)
    per_kind = max(args.count // len(KINDS), 1)
    conns = [Conn(kind, grpc if kind.startswith("grpc") else http) for kind in KINDS for _ in range(per_kind)]
    closed_by_server = {kind: 0 for kind in KINDS}
    lifetimes = {kind: [] for kind in KINDS}
    connect_errors = 0
    reopened = 0
    selector = selectors.DefaultSelector()

    def reopen_closed(first=False):
        nonlocal connect_errors, reopened
        now = time.monotonic()
        for conn in conns:
            if conn.sock is None and conn.reopen_at <= now:
                try:
                    conn.open()
                except OSError:
                    connect_errors += 1
                    conn.close()
                    continue
                selector.register(conn.sock, selectors.EVENT_READ, conn)
                if not first:
                    reopened += 1

    def write_status():
        open_now = {kind: 0 for kind in KINDS}
        for conn in conns:
            if conn.sock is not None:
                open_now[conn.kind] += 1
        lines = [f"open {sum(open_now.values())}", f"target {len(conns)}",
                 f"reopened {reopened}", f"connect_errors {connect_errors}"]
        for kind in KINDS:
            ages = lifetimes[kind]
            lines.append(f"open_{kind} {open_now[kind]}")
            lines.append(f"closed_{kind} {closed_by_server[kind]}")
            lines.append(f"min_lifetime_s_{kind} {min(ages):.1f}" if ages else f"min_lifetime_s_{kind} -")
        tmp = args.status + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, args.status)

    end = time.monotonic() + args.duration
    reopen_closed(first=True)
    write_status()
    next_check = time.monotonic() + 1
    while not stop and time.monotonic() < end:
        for key, _ in selector.select(timeout=1.0):
            conn = key.data
            try:
                data = conn.sock.recv(65536)
            except OSError as e:
                data = b"" if e.errno != errno.EAGAIN else None
            if data is None:
                continue
            if data:
                try:
                    if conn.on_data(data):
                        continue
                except OSError:
                    pass
            closed_by_server[conn.kind] += 1
            lifetimes[conn.kind].append(time.monotonic() - conn.opened)
            selector.unregister(conn.sock)
            conn.close()
            conn.reopen_at = time.monotonic() + random.uniform(0, 3)
        if time.monotonic() >= next_check:
            reopen_closed()
            write_status()
            next_check = time.monotonic() + 1
    write_status()
    for conn in conns:
        conn.close()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""One sample of a process for scripts/soak.sh, from /proc, as one tab-separated line:

    rss_kb  fds  threads  cpu_ticks  established  other_fds  close_wait

`established` counts its file descriptors that are TCP connections in ESTABLISHED state: how many
there are depends on the clients. `other_fds` is everything else (files, pipes, epoll and inotify
descriptors, listening sockets, sockets in any other state, sockets that no longer are in the kernel's
TCP tables), which does not depend on the clients and must stay flat; `close_wait` counts the
connections the peer closed and the process has not, which would grow if it leaked sockets. Prints
zeros when the process is gone.

    scripts/soak-proc.py PID
"""

import os
import sys

ESTABLISHED, CLOSE_WAIT = "01", "08"


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return int(fields["VmRSS"][0]), int(fields["Threads"][0])


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces: fields are counted after its closing parenthesis.
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def socket_inodes(pid):
    fds, inodes = 0, []
    directory = f"/proc/{pid}/fd"
    for name in os.listdir(directory):
        fds += 1
        try:
            target = os.readlink(os.path.join(directory, name))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.append(target[8:-1])
    return fds, inodes


def tcp_states():
    states = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 9:
                        states[parts[9]] = parts[3]
        except OSError:
            pass
    return states


def main():
    pid = sys.argv[1]
    try:
        rss, threads = status(pid)
        ticks = cpu_ticks(pid)
        fds, inodes = socket_inodes(pid)
    except (OSError, KeyError, IndexError, ValueError):
        print("\t".join(["0"] * 7))
        return
    states = tcp_states()
    established = sum(1 for inode in inodes if states.get(inode) == ESTABLISHED)
    close_wait = sum(1 for inode in inodes if states.get(inode) == CLOSE_WAIT)
    print("\t".join(str(v) for v in (rss, fds, threads, ticks, established, fds - established, close_wait)))


if __name__ == "__main__":
    main()

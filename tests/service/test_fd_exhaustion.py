#!/usr/bin/python3
"""Descriptor exhaustion and 1,000 connections at once against a real vkresampled (issue 7).

- --max-connections 20: the 21st connection waits in the listen backlog (no reply to its PING)
  while the 20 are served; accepting pauses (STATS accept_pauses) and resumes when one closes,
  and the waiting connection is then answered;
- descriptor exhaustion: the daemon's RLIMIT_NOFILE is lowered to 256 (prlimit(2) on the running
  daemon) and 1,000 connections are opened at once; accept4 fails with EMFILE, accepting pauses
  (the listening socket is no longer watched), the daemon's CPU time (utime + stime from
  /proc/PID/stat) grows by less than 0.5 s over 2 s of saturation, a connection accepted before
  the flood is still served meanwhile, and once connections close every one of the 1,000 is
  accepted and the last ones are served (service resumes); descriptors and connections return to
  their baseline and the daemon stops with exit 0.

usage: test_fd_exhaustion.py DAEMON      (TAP output)"""
import argparse
import os
import resource
import select
import socket
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import check_stopped, Tap, running_daemon, vkresample as v  # noqa: E402

N_CONNECTIONS = 1000
NOFILE = 256
SATURATION_S = 2.0
CPU_LIMIT_S = 0.5


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def open_fds(pid):
    return len(os.listdir('/proc/%d/fd' % pid))


def ping_raw(s, rid):
    s.sendall(v.pack_header(v.MSG_PING, rid, 0))


def answered(s, within):
    """True when a PONG arrives within `within` seconds (a deadline, not a sleep)."""
    r, _, _ = select.select([s], [], [], within)
    if not r:
        return False
    data = s.recv(4096)
    return len(data) >= 32 and v.unpack_header(data[:32])[2] == v.MSG_PONG


def job_ok(client, seed):
    x = np.random.default_rng(seed).standard_normal((1, 3, 7, 9)).astype(np.float32)
    y = client.interpolate(x, scale_factor=2.0, mode='nearest', backend='cpu')
    return np.array_equal(y, np.repeat(np.repeat(x, 2, axis=2), 2, axis=3))


def connect_blocking(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)   # blocking: waits while the daemon's backlog is full
    return s


def test_max_connections(tap, binary):
    with running_daemon(binary, backend='cpu', extra=('--max-connections', '20')) as d:
        watch = d.client()
        watch.ping()
        socks = [connect_blocking(d.socket) for _ in range(25)]
        for _ in range(100000):
            st = watch.stats()
            if st['clients'] == 20 and st['accept_pauses'] >= 1:
                break
        tap.check(st['clients'] == 20 and st['accept_pauses'] == 1,
                  '--max-connections 20: 20 connections open, accepting paused once (%d, %d)' % (st['clients'], st['accept_pauses']))
        ping_raw(socks[0], 1)
        ping_raw(socks[22], 2)
        tap.check(answered(socks[0], 30) and not answered(socks[22], 0.3),
                  'an accepted connection is served; one waiting in the backlog is not (yet)')
        for s in socks[:5]:
            s.close()
        tap.check(answered(socks[22], 30), 'once connections close, the waiting one is accepted and answered')
        for s in socks[5:]:
            s.close()
        for _ in range(100000):
            if watch.stats()['clients'] == 1:
                break
        tap.check(job_ok(watch, 1) and 'accepting connections again' in d.log() and '--max-connections 20' in d.log(),
                  'accepting resumed (logged with the limit\'s name) and the daemon serves')
        watch.close()
        d.stop()


def test_exhaustion(tap, binary):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * NOFILE:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    with running_daemon(binary, backend='cpu', extra=('--max-connections-per-uid', str(2 * N_CONNECTIONS))) as d:
        pid = d.proc.pid
        watch = d.client()
        watch.ping()
        fds_before = open_fds(pid)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
        socks = []          # open on the client side
        lock = threading.Lock()
        release = threading.Event()   # from then on the opener closes what it opens, but the last 10
        errors = []
        count = [0]

        def flood():
            try:
                for k in range(N_CONNECTIONS):
                    s = connect_blocking(d.socket)
                    count[0] += 1
                    with lock:
                        if release.is_set() and k < N_CONNECTIONS - 10:
                            s.close()
                        else:
                            socks.append(s)
            except OSError as e:
                errors.append(repr(e))
        opener = threading.Thread(target=flood)
        opener.start()
        for _ in range(100000):   # until the daemon ran out of descriptors and paused
            if watch.stats()['accept_pauses'] >= 1:
                break
        st = watch.stats()
        tap.check(st['accept_pauses'] == 1 and 'Too many open files' in d.log(),
                  'EMFILE: accepting paused (%d connections open, %d opened by the client so far)' % (st['clients'], len(socks)))
        c0 = cpu_seconds(pid)
        t0 = time.monotonic()
        time.sleep(SATURATION_S)   # the measurement window: the daemon must sit still meanwhile
        used = cpu_seconds(pid) - c0
        window = time.monotonic() - t0
        tap.check(used < CPU_LIMIT_S, 'while paused the daemon used %.2f s of CPU in %.2f s (< %.1f s: no busy loop)'
                  % (used, window, CPU_LIMIT_S))
        tap.check(job_ok(watch, 2), 'a connection accepted before the flood is served while accepting is paused')

        # close every connection so far; the opener closes the next ones itself, but the last 10
        with lock:
            for s in socks:
                s.close()
            socks.clear()
            release.set()
        opener.join()
        last = socks[-10:]
        for k, s in enumerate(last):
            ping_raw(s, 100 + k)
        served = sum(answered(s, 60) for s in last)
        tap.check(not errors and count[0] == N_CONNECTIONS and len(last) == 10 and served == 10,
                  'all %d connections got through in the end, the last 10 are served (%d; %s)' % (count[0], served, errors[:1]))
        for s in last:
            s.close()
        for _ in range(100000):
            st = watch.stats()
            if st['clients'] == 1:
                break
        fds_after = open_fds(pid)
        tap.check(st['clients'] == 1 and fds_after == fds_before,
                  'connections and descriptors back to their baseline (%d open; fds %d before, %d after)' % (st['clients'], fds_before, fds_after))
        tap.check(job_ok(watch, 3) and 'accepting connections again' in d.log(), 'accepting resumed and the daemon serves')
        with d.client() as c:
            tap.check(job_ok(c, 4), 'a new connection is served')
        watch.close()
        check_stopped(tap, d, 'daemon stopped with exit 0 and removed its socket')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    args = ap.parse_args()
    tap = Tap()
    test_max_connections(tap, args.daemon)
    test_exhaustion(tap, args.daemon)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())

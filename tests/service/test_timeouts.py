#!/usr/bin/python3
"""Idle and slow clients against a real vkresampled (issue 7): --idle-timeout and --frame-timeout.

- a connection that stops in the middle of a frame header, or of a SUBMIT body, gets one ERROR
  VKR_E_TIMEOUT [idle_timeout] (request_id 0) about --idle-timeout seconds later and is closed;
- a client sending one byte every quarter second (so never idle) is closed with VKR_E_TIMEOUT
  [frame_timeout] when its frame is not complete --frame-timeout seconds after its first byte,
  while another client's jobs, run back to back meanwhile, stay correct and fast;
- a connection idle *between* frames for longer than the idle timeout is not closed;
- a connection whose stream broke while megabytes of replies wait for it, and which never reads
  them, is closed once the idle timeout passes without a byte written (it does not hold its
  queue bytes for ever);
- the daemon logs each limit by its flag, STATS counts the timed-out connections, descriptors
  return to their baseline and the daemon stops with exit 0.

The clients pace their bytes with sleeps (that is the behaviour under test); every wait for the
daemon is a blocking read with a deadline, never a sleep.

usage: test_timeouts.py DAEMON      (TAP output)"""
import argparse
import os
import socket
import struct
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import check_stopped, Tap, running_daemon, vkresample as v  # noqa: E402

IDLE_S = 1.0
FRAME_S = 3.0
SLACK_S = 4.0    # scheduling and valgrind: a timeout must fire within this much after its deadline
HEADER = struct.Struct('<IHHIIIIQ')


def raw_connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(FRAME_S + 2 * SLACK_S + 30)
    return s


def read_until_closed(s):
    """Everything the daemon sends until it closes: (bytes, seconds waited)."""
    t0 = time.monotonic()
    data = b''
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - t0


def first_error(data):
    """(request_id, code, field, message) of the first frame if it is an ERROR, else None."""
    if len(data) < HEADER.size:
        return None
    h = HEADER.unpack_from(data)
    if h[2] != v.MSG_ERROR:
        return None
    return (h[4],) + tuple(v.unpack_error(data[32:32 + h[7]]))


def open_fds(pid):
    return len(os.listdir('/proc/%d/fd' % pid))


def job_ok(client, seed):
    x = np.random.default_rng(seed).standard_normal((1, 3, 7, 9)).astype(np.float32)
    y = client.interpolate(x, scale_factor=2.0, mode='nearest', backend='cpu')
    return np.array_equal(y, np.repeat(np.repeat(x, 2, axis=2), 2, axis=3))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    args = ap.parse_args()
    tap = Tap()
    extra = ('--idle-timeout', str(IDLE_S), '--frame-timeout', str(FRAME_S))
    with running_daemon(args.daemon, backend='cpu', extra=extra) as d:
        watch = d.client()
        watch.ping()
        fds_before = open_fds(d.proc.pid)

        # 1. stalled in the middle of a header
        s = raw_connect(d.socket)
        s.sendall(HEADER.pack(v.MAGIC, 1, v.MSG_PING, 0, 5, 0, 0, 0)[:10])
        data, waited = read_until_closed(s)
        s.close()
        err = first_error(data)
        tap.check(err is not None and err[:3] == (0, v.VKR_E_TIMEOUT, 'idle_timeout') and '--idle-timeout' in err[3] and
                  '10 of 32 header bytes' in err[3] and IDLE_S - 0.05 <= waited < IDLE_S + SLACK_S,
                  '10 header bytes, then nothing: ERROR VKR_E_TIMEOUT [idle_timeout] after %.2f s, then closed (%s)' % (waited, err))

        # 2. stalled in the middle of a SUBMIT body (admitted: its queue bytes must come back)
        s = raw_connect(d.socket)
        s.sendall(HEADER.pack(v.MAGIC, 1, v.MSG_SUBMIT, 0, 6, 0, 0, 1000) + b'\0' * 100)
        data, waited = read_until_closed(s)
        s.close()
        err = first_error(data)
        tap.check(err is not None and err[:3] == (0, v.VKR_E_TIMEOUT, 'idle_timeout') and '100 of 1000 body bytes' in err[3] and
                  IDLE_S - 0.05 <= waited < IDLE_S + SLACK_S,
                  'a SUBMIT body stalled at 100 of 1000 bytes: VKR_E_TIMEOUT [idle_timeout] after %.2f s (%s)' % (waited, err))

        # 3. one byte every 0.25 s: never idle, closed at the frame timeout; a bystander unharmed
        s = raw_connect(d.socket)
        frame = HEADER.pack(v.MAGIC, 1, v.MSG_SUBMIT, 0, 7, 0, 0, 64) + b'\0' * 64
        stop = threading.Event()
        t0 = time.monotonic()

        def dribble():
            for b in frame:
                if stop.is_set():
                    return
                try:
                    s.send(bytes([b]))
                except OSError:
                    return
                stop.wait(0.25)
        bystander = {'jobs': 0, 'bad': 0, 'worst': 0.0}

        def busy():
            with d.client() as c:
                while not stop.is_set():
                    t = time.monotonic()
                    if not job_ok(c, bystander['jobs']):
                        bystander['bad'] += 1
                    bystander['worst'] = max(bystander['worst'], time.monotonic() - t)
                    bystander['jobs'] += 1
        threads = [threading.Thread(target=dribble), threading.Thread(target=busy)]
        for t in threads:
            t.start()
        data, _ = read_until_closed(s)
        waited = time.monotonic() - t0
        stop.set()
        for t in threads:
            t.join()
        s.close()
        err = first_error(data)
        tap.check(err is not None and err[:3] == (0, v.VKR_E_TIMEOUT, 'frame_timeout') and '--frame-timeout' in err[3] and
                  FRAME_S - 0.05 <= waited < FRAME_S + SLACK_S,
                  'one byte every 0.25 s: VKR_E_TIMEOUT [frame_timeout] %.2f s after the first byte, then closed (%s)' % (waited, err))
        tap.check(bystander['jobs'] >= 5 and bystander['bad'] == 0 and bystander['worst'] < 1.0,
                  'meanwhile another client ran %d jobs back to back, all correct, the slowest in %.3f s'
                  % (bystander['jobs'], bystander['worst']))

        # 4. idle between frames is fine, however long
        with d.client() as c:
            c.ping()
            time.sleep(IDLE_S * 1.5)   # the behaviour under test: a quiet client between requests
            tap.check(job_ok(c, 99), 'a connection idle between frames for %.1f s (over --idle-timeout) is still served' % (IDLE_S * 1.5))

        # 5. a broken stream with megabytes of replies waiting, never read: closed after the idle timeout
        s = raw_connect(d.socket)
        x = np.ones((1, 1, 512, 512), np.float32)
        body = v.pack_submit_body(x.shape, x.tobytes(), mode='nearest', scale_factor=2.0, backend='cpu')
        done_before = sum(r['done'] for r in watch.stats()['jobs'])
        for rid in range(1, 5):
            s.sendall(v.pack_header(v.MSG_SUBMIT, rid, len(body)) + body)
        for _ in range(100000):   # until all 4 replies are queued (they cannot all be written)
            if sum(r['done'] for r in watch.stats()['jobs']) == done_before + 4:
                break
        s.sendall(HEADER.pack(0xDEADBEEF, 1, v.MSG_PING, 0, 9, 0, 0, 0))
        t0 = time.monotonic()
        gone = False
        while time.monotonic() - t0 < IDLE_S + SLACK_S + 30:
            if watch.stats()['clients'] == 1:
                gone = True
                break
        waited = time.monotonic() - t0
        s.close()
        tap.check(gone and IDLE_S - 0.05 <= waited and 'were not read' in d.log(),
                  'a peer that never reads its last 16 MiB of replies is closed after the idle timeout (%.2f s)' % waited)

        st = watch.stats()
        log = d.log()
        tap.check(st['connections_timed_out'] == 3 and log.count('--idle-timeout') >= 2 and '--frame-timeout' in log,
                  'stats count 3 timed-out connections and the log names each limit (%d)' % st['connections_timed_out'])
        for _ in range(100000):
            if watch.stats()['clients'] == 1:
                break
        fds_after = open_fds(d.proc.pid)
        tap.check(fds_after == fds_before, 'descriptors back to their baseline (%d before, %d after)' % (fds_before, fds_after))
        tap.check(job_ok(watch, 7), 'the daemon still serves')
        watch.close()
        check_stopped(tap, d, 'daemon stopped with exit 0 and removed its socket')
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/python3
"""The fault matrix: one misbehaving client at a time against a real vkresampled.  For every
scenario the test asserts the expected answer, and that meanwhile
  - the daemon stays up,
  - a bystander client on its own connection keeps getting correct results,
  - the daemon's descriptor count returns to its baseline and its resident memory to within
    RSS_SLACK_KIB of it.
It prints the matrix (scenario, expected, observed) as TAP comments at the end.

usage: test_faults.py DAEMON [--backend cpu|vulkan]     (TAP output)"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import threading

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import (Daemon, Tap, built_with_asan, print_fault_rows, closed_by_peer, error_of, exchange, job_ok, memfd,  # noqa: E402
                         open_fds, rss_kib, running_daemon, vkresample as v, wait_until)

RSS_SLACK_KIB = 32 * 1024
MAX_JOB_BYTES = 64 * 1024 * 1024


class Bystander:
    """A client running correct jobs in a loop on its own connection while a fault happens."""

    def __init__(self, sock, backend):
        self.client = v.Client(sock)
        self.backend = backend
        self.done = self.bad = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        seed = 0
        while not self.stop.is_set():
            seed += 1
            try:
                ok = job_ok(self.client, self.backend, seed)
            except v.VkresampleError:
                ok = False
            self.done += 1
            self.bad += int(not ok)

    def finish(self):
        wait_until(lambda: self.done >= 3, 30)     # at least a few jobs ran during the fault
        self.stop.set()
        self.thread.join()
        self.client.close()
        return self.bad == 0 and self.done >= 3


def submit_frame(x, rid=1, **kw):
    data = np.ascontiguousarray(x, np.float32).tobytes()
    body = v.pack_submit_body(x.shape, data, **kw)
    return v.pack_header(v.MSG_SUBMIT, rid, len(body)) + body


def scenarios(sock, backend, daemon_pid):
    """Each scenario: (name, expected, run) where run() returns (ok, observed)."""
    x_small = np.ones((1, 2, 4, 4), np.float32)
    x_big = np.random.default_rng(0).standard_normal((4, 3, 256, 256)).astype(np.float32)

    def frame_then_close(frame, cut):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(frame[:cut])
        s.close()
        return True, 'connection dropped by the client, nothing to answer'

    def bad_header(**kw):
        c = v.Client(sock)
        reply = exchange(c, v.pack_header(v.MSG_PING, 9, 0, **kw))
        e = error_of(reply)
        closed = closed_by_peer(c)
        c.close()
        return e is not None and closed, 'ERROR %s [%s], closed=%s' % (e and v.CODES.get(e[0]), e and e[1], closed)

    def bad_type():
        c = v.Client(sock)
        e = error_of(exchange(c, v.pack_header(99, 9, 0)))
        closed = closed_by_peer(c)
        c.close()
        return e is not None and e[0] == v.VKR_E_PROTOCOL and closed, 'ERROR %s [%s], closed=%s' % (
            e and v.CODES.get(e[0]), e and e[1], closed)

    def job_refused(frame, code, field, keeps_connection=True, fds=()):
        c = v.Client(sock)
        e = error_of(exchange(c, frame, fds))
        alive = False
        if keeps_connection and e is not None:
            try:
                alive = c.ping() is not None
            except v.VkresampleError:
                alive = False
        else:
            alive = not closed_by_peer(c)
        c.close()
        ok = e is not None and e[0] == code and (field is None or e[1] == field) and alive == keeps_connection
        return ok, 'ERROR %s [%s] "%s"; connection %s' % (e and v.CODES.get(e[0]), e and e[1], e and e[2][:60],
                                                         'kept' if alive else 'closed')

    def disconnect_mid_job():
        c = v.Client(sock)
        c.send_raw(submit_frame(x_big, mode='bicubic', scale_factor=2.0, align_corners=False, backend=backend))
        c.close()
        return True, 'client gone while its job runs; the reply is dropped'

    def disconnect_before_reply():
        c = v.Client(sock)
        before = v.Client(sock)
        done0 = sum(j['done'] for j in before.stats()['jobs'])
        c.send_raw(submit_frame(x_big, mode='nearest', scale_factor=2.0, backend=backend))
        finished = wait_until(lambda: sum(j['done'] + j['failed'] for j in before.stats()['jobs']) > done0, 60)
        before.close()
        c.close()
        return finished, 'job finished (stats), client closed without reading its %d-byte reply' % (x_big.nbytes * 4)

    def kill9_with_queue():
        # 40 jobs sent without reading a reply: their outputs (768 KiB each, 30 MiB in all) stay
        # under the 64 MiB of replies a connection may have outstanding before the daemon stops
        # reading it (VKR__CLIENT_REPLY_BACKLOG_BYTES), so all 40 go out before the kill
        code = ('import sys, numpy as np; sys.path.insert(0, %r); import vkresample as v\n'
                'c = v.Client(%r); x = np.ones((1, 3, 128, 128), np.float32)\n'
                'body = v.pack_submit_body(x.shape, x.tobytes(), mode="bilinear", scale_factor=2.0, align_corners=False,'
                ' backend=%r)\n'
                'for i in range(40): c.send_raw(v.pack_header(v.MSG_SUBMIT, i + 1, len(body)) + body)\n'
                'print("sent", flush=True); sys.stdin.read()\n') % (os.path.dirname(v.__file__), sock, backend)
        p = subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        p.kill()
        p.wait()
        return line.strip() == 'sent', 'client killed (-9) with 40 jobs queued or running: %s' % line.strip()

    def fd_not_claimed():
        fd = memfd(b'\0' * 64)
        try:
            c = v.Client(sock)
            reply = exchange(c, v.pack_header(v.MSG_PING, 5, 0), fds=[fd])
            closed = reply is None or closed_by_peer(c)
            c.close()
        finally:
            os.close(fd)
        return closed, 'a descriptor nobody claimed: connection closed=%s (the fd count check follows)' % closed

    def memfd_job(fd, nbytes, shape=(1, 2, 4, 4)):
        body = v.pack_submit_body(shape, b'', mode='nearest', size=8, backend=backend, storage=v.STORAGE_MEMFD,
                                  fd_index=0, data_offset=0, data_bytes=nbytes)
        return v.pack_header(v.MSG_SUBMIT, 3, len(body), n_fds=1) + body

    def memfd_refused(make_fd, what):
        fd = make_fd()
        try:
            return job_refused(memfd_job(fd, 128), v.VKR_E_FD, None, True, fds=[fd])
        finally:
            os.close(fd)

    def sealed_cannot_shrink():
        fd = memfd(b'\0' * 128)
        try:
            os.ftruncate(fd, 16)
            shrunk = True
        except OSError:
            shrunk = False
        ok, seen = job_refused(memfd_job(fd, 128), 0, None) if shrunk else (True, '')
        if not shrunk:
            c = v.Client(sock)
            reply = exchange(c, memfd_job(fd, 128), [fd])
            ok = reply is not None and reply.type == v.MSG_RESULT
            for d in reply.fds if reply else ():
                os.close(d)
            c.close()
            seen = 'ftruncate of the sealed memfd refused by the kernel; the job ran: %s' % ok
        os.close(fd)
        return ok and not shrunk, seen

    def pipe_fd():
        r, w = os.pipe()
        os.close(w)
        return r

    def many_connections(n=200):
        conns = []
        try:
            for _ in range(n):
                conns.append(v.Client(sock))
            for c in conns:
                c.send_raw(v.pack_header(v.MSG_PING, 1, 0))
            answered = sum(c.recv_frame() is not None for c in conns)
        finally:
            for c in conns:
                c.close()
        return answered == n, '%d connections at once, %d PINGs answered' % (n, answered)

    too_big_out = submit_frame(np.ones((1, 1, 64, 64), np.float32), mode='nearest', size=[4097, 4096], backend=backend)
    overflow_shape = v.pack_submit_body([0x7fffffff] * 4, b'', mode='nearest', size=2, data_bytes=16)
    return [
        ('disconnect mid-header', 'daemon drops the connection', lambda: frame_then_close(submit_frame(x_small), 17)),
        ('disconnect mid-body', 'daemon drops the half-read body', lambda: frame_then_close(submit_frame(x_big), 100000)),
        ('disconnect mid-job', 'job finishes, reply dropped', disconnect_mid_job),
        ('disconnect before reading the reply', 'reply dropped, nothing kept', disconnect_before_reply),
        ('kill -9 of a client with jobs queued', 'its jobs dropped or finished, nothing kept', kill9_with_queue),
        ('bad magic', 'ERROR VKR_E_PROTOCOL, connection closed', lambda: bad_header(magic=0x12345678)),
        ('bad version', 'ERROR VKR_E_VERSION, connection closed', lambda: bad_header(version=7)),
        ('bad type', 'ERROR VKR_E_PROTOCOL, connection closed', bad_type),
        ('body_len over 32 bits', 'ERROR VKR_E_TOO_LARGE, connection closed',
         lambda: job_refused(v.pack_header(v.MSG_SUBMIT, 4, (1 << 32) + 8), v.VKR_E_TOO_LARGE, 'body_len', False)),
        ('body_len 2^64-1', 'ERROR VKR_E_TOO_LARGE, connection closed',
         lambda: job_refused(v.pack_header(v.MSG_SUBMIT, 4, (1 << 64) - 1), v.VKR_E_TOO_LARGE, 'body_len', False)),
        ('shape product overflows', 'ERROR VKR_E_TOO_LARGE [input.shape], connection kept',
         lambda: job_refused(v.pack_header(v.MSG_SUBMIT, 4, len(overflow_shape)) + overflow_shape, v.VKR_E_TOO_LARGE,
                             'input.shape')),
        ('output over --max-job-bytes', 'ERROR VKR_E_TOO_LARGE [size], connection kept',
         lambda: job_refused(too_big_out, v.VKR_E_TOO_LARGE, 'size')),
        ('header claims a descriptor not sent', 'ERROR VKR_E_PROTOCOL [n_fds], connection closed',
         lambda: job_refused(memfd_job(-1, 128), v.VKR_E_PROTOCOL, 'n_fds', False)),
        ('descriptor sent but not claimed', 'connection closed, descriptor closed', fd_not_claimed),
        ('memfd not sealed against shrinking', 'ERROR VKR_E_FD, connection kept',
         lambda: memfd_refused(lambda: memfd(b'\0' * 128, seals=0), 'unsealed')),
        ('memfd shorter than its tensor', 'ERROR VKR_E_FD, connection kept',
         lambda: memfd_refused(lambda: memfd(b'\0' * 64), 'short')),
        ('memfd truncated after sending', 'impossible: sealed memfds cannot shrink (no SIGBUS)', sealed_cannot_shrink),
        ('a socket where a memfd belongs', 'ERROR VKR_E_FD, connection kept',
         lambda: memfd_refused(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).detach(), 'socket')),
        ('a directory where a memfd belongs', 'ERROR VKR_E_FD, connection kept',
         lambda: memfd_refused(lambda: os.open('/', os.O_RDONLY | os.O_DIRECTORY), 'dir')),
        ('a pipe where a memfd belongs', 'ERROR VKR_E_FD, connection kept', lambda: memfd_refused(pipe_fd, 'pipe')),
        ('200 connections at once', 'all served, descriptors released', many_connections),
    ]


def sigterm_under_load(tap, binary, backend, matrix):
    """8 clients with pipelined jobs admitted; SIGTERM: every admitted job answered correctly,
    socket removed, exit 0."""
    d = Daemon(binary, backend=backend)
    clients, handles, xs = [], [], []
    for k in range(8):
        c = v.Client(d.socket)
        clients.append(c)
        for j in range(6):
            x = np.random.default_rng(100 * k + j).standard_normal((2, 3, 64, 64)).astype(np.float32)
            body = v.pack_submit_body(x.shape, x.tobytes(), mode='nearest', scale_factor=2.0, backend=backend)
            c.send_raw(v.pack_header(v.MSG_SUBMIT, j + 1, len(body)) + body)
            handles.append((c, j + 1, x))
    watcher = v.Client(d.socket)
    admitted = wait_until(lambda: (lambda s: s['queued'] + s['running'] + sum(j['done'] for j in s['jobs']))(watcher.stats()) >= 48,
                          60)
    watcher.close()
    d.proc.send_signal(signal.SIGTERM)
    answered = 0
    replies = {}                                       # (client, request_id) -> frame: any order
    for c in clients:
        for _ in range(6):
            try:
                f = c.recv_frame(max_body=1 << 30)
            except v.VkresampleError:
                break
            if f is None:
                break
            replies[(id(c), f.request_id)] = f
    for c, rid, x in handles:
        f = replies.get((id(c), rid))
        if f is not None and f.type == v.MSG_RESULT:
            y = v.unpack_result(f.body)
            got = np.frombuffer(f.body[v.RESULT_FIXED_BYTES:], np.float32).reshape(y['shape'])
            answered += int(np.array_equal(got, np.repeat(np.repeat(x, 2, 2), 2, 3)))
    for c in clients:
        c.close()
    status = d.proc.wait(timeout=120)
    ok = admitted and answered == 48 and status == 0 and not os.path.exists(d.socket)
    observed = '%d/48 admitted jobs answered correctly, exit %s, socket %s' % (answered, status,
                                                                               'left' if os.path.exists(d.socket) else 'removed')
    tap.check(ok, 'SIGTERM under load: ' + observed)
    matrix.append(('SIGTERM under load', 'admitted jobs answered, socket removed, exit 0', observed, ok))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--backend', default='cpu', choices=('cpu', 'vulkan'))
    args = ap.parse_args()
    tap, matrix = Tap(), []
    with running_daemon(args.daemon, backend=args.backend, extra=('--max-job-bytes', str(MAX_JOB_BYTES))) as d:
        pid = d.proc.pid
        with v.Client(d.socket) as warm:               # warm the paths the scenarios use
            for i in range(4):
                job_ok(warm, args.backend, i, shape=(4, 3, 256, 256))
        base_fds, base_rss = open_fds(pid), rss_kib(pid)
        asan = built_with_asan(pid)                     # ASan's quarantine holds freed memory
        if asan:
            print('# the daemon runs under AddressSanitizer: resident memory is not bounded here', flush=True)
        for name, expected, run in scenarios(d.socket, args.backend, pid):
            bystander = Bystander(d.socket, args.backend)
            try:
                ok, observed = run()
            except Exception as e:  # noqa: BLE001 - a scenario must not take the matrix down
                ok, observed = False, 'raised %r' % e
            others_ok = bystander.finish()
            up = d.proc.poll() is None
            fds_back = wait_until(lambda: open_fds(pid) <= base_fds, 20)
            rss_now = rss_kib(pid) if up else -1
            rss_ok = up and (asan or rss_now - base_rss <= RSS_SLACK_KIB)
            all_ok = ok and others_ok and up and fds_back and rss_ok
            detail = '%s; daemon %s; bystander %s; fds %d (base %d); rss %+d KiB' % (
                observed, 'up' if up else 'DOWN', 'ok' if others_ok else 'FAILED', open_fds(pid) if up else -1, base_fds,
                rss_now - base_rss)
            tap.check(all_ok, '%s: %s' % (name, detail))
            matrix.append((name, expected, detail, all_ok))
            if not up:
                break
        d.stop()
    sigterm_under_load(tap, args.daemon, args.backend, matrix)
    print_fault_rows('fault matrix (%s backend)' % args.backend, matrix)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/python3
"""One user locking out the others (issue 11): admission, unread replies, shutdown, SIGHUP and the
lock, against a real vkresampled.

1. Bytes are reserved as a body arrives.  uid 65534 (setpriv, let in with --allow-uid) opens two
   connections, sends on each a SUBMIT header announcing a 128 MiB body and one byte of it, and
   stalls; the daemon's own uid then runs small jobs: every one must succeed at once (before, the
   two headers had reserved the whole --max-queue-bytes and every other job got "daemon queue
   memory full" for the whole frame timeout).  Without root and setpriv this part is a SKIP.
   Also (one uid, two connections, --max-bytes-per-uid 4M): a body whose next reservation step
   does not fit is refused mid-body with VKR_E_BUSY [queue] naming body_len, the bytes that had
   arrived and --max-bytes-per-uid, and the connection that holds the share finishes its job.
2. Replies never read.  A client pipelines 150 jobs of 4 MiB inline output and never reads:
   the daemon's resident memory stays within 160 MiB of its baseline (it stops reading that
   connection past 64 MiB of replies still to write), the connection is closed about
   --idle-timeout after its replies stopped moving (STATS counts it), memory goes back, and
   another client's jobs succeed all along.
3. SIGTERM while a client leaves its replies unread: the daemon exits 0 within --shutdown-timeout
   (1 s given; and the 10 s default) plus slack, socket and lock file removed.
4. SIGHUP is logged and ignored: the daemon serves on, then stops cleanly.
5. The lock comes first: a second daemon (--backend vulkan) on a busy socket exits 1 naming the
   lock within 0.5 s, without starting Vulkan or writing a pipeline cache.

usage: test_admission.py DAEMON      (TAP output)"""
import argparse
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import Tap, built_with_asan, check_stopped, error_of, nearest_x2, rss_kib, running_daemon, \
    vkresample as v, wait_until  # noqa: E402
import vkr_testlib  # noqa: E402

NOBODY = 65534
SLACK_S = 3.0          # a deadline must be met within this much after it passes
MIB = 1 << 20

# Run as uid 65534: N connections, each a SUBMIT header announcing BODY_LEN bytes and one byte of
# the body; 'stalled' once all are sent; holds them until stdin closes.
HOG_CLIENT = r'''
import os, socket, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vkresample as v
path, n, body_len = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
for rid in range(1, n + 1):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(v.pack_header(v.MSG_SUBMIT, rid, body_len) + b'\0')
    socks.append(s)
print('stalled', os.getuid(), flush=True)
sys.stdin.read()
'''


MATRIX = []   # (scenario, expected, observed, ok), printed at the end as test_faults.py does


def row(scenario, expected, observed, ok):
    MATRIX.append((scenario, expected, observed, ok))


def skip(tap, what, why):
    tap.n += 1
    print('ok %d - %s # SKIP %s' % (tap.n, what, why), flush=True)


def small_jobs(c, n, seed):
    """n nearest x2 jobs one at a time: (answered right, [first few errors], slowest round trip s)."""
    rng = np.random.default_rng(seed)
    ok, errors, worst = 0, [], 0.0
    for _ in range(n):
        x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
        t0 = time.monotonic()
        try:
            y = c.interpolate(x, scale_factor=2.0, mode='nearest', backend='cpu')
            ok += int(np.array_equal(y, nearest_x2(x)))
        except v.VkresampleError as e:
            errors.append('%s [%s]: %s' % (e.code_name, e.field, e.message))
        worst = max(worst, time.monotonic() - t0)
    return ok, errors[:2], worst


# ---------------------------------------------------------------- 1. bytes reserved as they arrive
def test_header_hog(tap, binary):
    names = ['two SUBMIT headers of another uid announcing 128 MiB each (+1 byte, stalled) do not lock the daemon\'s '
             'own uid out: its jobs all succeed at once',
             'the stalled headers are still open meanwhile (the hog really holds them)']
    why = vkr_testlib.can_switch_uid()
    if why:
        for n in names:
            skip(tap, n, why)
        row('2 stalled 128 MiB SUBMIT headers of another uid', 'the other uid\'s jobs all succeed at once', 'SKIP: %s' % why, True)
        return
    d = vkr_testlib.shared_dir('vkr-admission-', {'hog.py': HOG_CLIENT})
    sock = os.path.join(d, 's.sock')
    # --max-bytes-per-uid left to its default: that default is under test too
    extra = ('--socket-mode', '0666', '--allow-uid', str(NOBODY), '--max-queue-bytes', '256M', '--max-job-bytes', '64M')
    hog = None
    try:
        with running_daemon(binary, backend='cpu', extra=extra, socket_path=sock) as dm:
            env = {'PATH': '/usr/bin:/bin', 'HOME': d, 'PYTHONDONTWRITEBYTECODE': '1'}
            hog = subprocess.Popen(['setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups', '/usr/bin/python3', '-s',
                                    os.path.join(d, 'hog.py'), sock, '2', str(128 * MIB)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=d)
            line = hog.stdout.readline().split()
            c = dm.client()
            # both headers and their byte read by the daemon before the other uid's jobs start
            wait_until(lambda: c.stats()['bytes_in'] >= 2 * (v.HEADER_BYTES + 1), 10)
            t0 = time.monotonic()
            ok, errors, worst = small_jobs(c, 20, 1)
            elapsed = time.monotonic() - t0
            clients = c.stats()['clients']
            c.close()
            print('# header hog: uid %s stalled 2 x 128 MiB headers; the other uid\'s 20 jobs: %d right, errors %s, slowest %.2f ms, '
                  'all in %.1f ms; %d clients open' % (line[1:] or '?', ok, errors, worst * 1e3, elapsed * 1e3, clients), flush=True)
            tap.check(line[:2] == ['stalled', str(NOBODY)] and ok == 20 and not errors and worst < 1.0,
                      '%s (%d of 20 right, slowest %.3f s, errors %s)' % (names[0], ok, worst, errors))
            tap.check(clients == 3, '%s (%d clients)' % (names[1], clients))
            row('2 stalled 128 MiB SUBMIT headers of another uid', 'the other uid\'s jobs all succeed at once',
                '%d/20 right, slowest %.2f ms%s' % (ok, worst * 1e3, (', ' + errors[0]) if errors else ''), ok == 20 and not errors)
            hog.stdin.close()
            hog.wait(timeout=30)
            hog = None
            check_stopped(tap, dm, 'header hog: daemon stopped cleanly')
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
        shutil.rmtree(d, ignore_errors=True)


def test_refused_mid_body(tap, binary):
    """One uid, --max-bytes-per-uid 4M: connection 1 has 3 MiB of a 3.5 MiB body in (reserved in
    steps up to 3.5 MiB); connection 2's whole 3.5 MiB body cannot be reserved past 0.5 MiB."""
    x = np.random.default_rng(5).standard_normal((1, 1, 896, 1024)).astype(np.float32)
    body = v.pack_submit_body(x.shape, x.tobytes(), mode='nearest', size=[8, 8], backend='cpu')
    frame = v.pack_header(v.MSG_SUBMIT, 7, len(body)) + body
    extra = ('--max-queue-bytes', '64M', '--max-job-bytes', '16M', '--max-bytes-per-uid', '4M')
    with running_daemon(binary, backend='cpu', extra=extra) as dm:
        watch = dm.client()
        first = dm.client()
        part = 3 * MIB
        before = watch.stats()['bytes_in']
        first.send_raw(frame[:part])
        wait_until(lambda: watch.stats()['bytes_in'] >= before + part, 10)
        second = dm.client()
        reply = vkr_testlib.exchange(second, v.pack_header(v.MSG_SUBMIT, 9, len(body)) + body)
        err = error_of(reply)
        first.send_raw(frame[part:])
        res = first.recv_frame(max_body=1 << 20)
        got = None
        if res is not None and res.type == v.MSG_RESULT:
            got = np.frombuffer(res.body, '<f4', offset=v.RESULT_FIXED_BYTES).reshape(v.unpack_result(res.body)['shape'])
        again = small_jobs(second, 1, 3)
        print('# refused mid-body: second connection got %s (request %s)' % (err, reply.request_id if reply else None), flush=True)
        refused_ok = (err is not None and reply.request_id == 9 and err[0] == v.VKR_E_BUSY and err[1] == 'queue' and
                      'body_len %d refused after' % len(body) in err[2] and '--max-bytes-per-uid' in err[2])
        row('a body past the uid\'s share (--max-bytes-per-uid)', 'VKR_E_BUSY [queue] mid-body, connection kept',
            '%s [%s] %s' % (v.CODES.get(err[0], err[0]), err[1], err[2][:70]) if err else 'no ERROR', refused_ok)
        tap.check(refused_ok,
                  'a body whose reservation step does not fit is refused mid-body: VKR_E_BUSY [queue] naming body_len, the bytes '
                  'that had arrived and --max-bytes-per-uid (%s)' % (err,))
        tap.check(got is not None and np.array_equal(got, x[:, :, ::112, ::128]) and again[0] == 1,
                  'the connection holding the share finishes its job right, and the refused one serves its next job')
        for c in (watch, first, second):
            c.close()
        check_stopped(tap, dm, 'refused mid-body: daemon stopped cleanly')


# ---------------------------------------------------------------- 2. replies never read
def peer_closed(sock):
    """True when the daemon has closed this (never read) connection."""
    p = select.poll()
    p.register(sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    return any(ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR) for _, ev in p.poll(0))


def test_unread_replies(tap, binary):
    idle_s, n_jobs = 2.0, 150
    x = np.ones((1, 1, 512, 512), np.float32)   # 1 MiB in, 4 MiB out
    body = v.pack_submit_body(x.shape, x.tobytes(), mode='nearest', scale_factor=2.0, backend='cpu')
    extra = ('--idle-timeout', str(idle_s), '--max-client-jobs', '1000')
    with running_daemon(binary, backend='cpu', extra=extra) as dm:
        pid = dm.proc.pid
        asan = built_with_asan(pid)   # its shadow and freed-memory quarantine: RSS bounds do not apply
        bound_mib = 160
        with dm.client() as warm:   # pools, threads, a few big outputs: the baseline includes them
            for _ in range(4):
                warm.interpolate(x, scale_factor=2.0, mode='nearest', backend='cpu')
            small_jobs(warm, 5, 2)
        base = rss_kib(pid)
        watch = dm.client()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(dm.socket)
        sent = {'n': 0, 'error': None}

        def sender():
            try:
                for rid in range(1, n_jobs + 1):
                    s.sendall(v.pack_header(v.MSG_SUBMIT, rid, len(body)) + body)
                    sent['n'] = rid
            except OSError as e:
                sent['error'] = e.__class__.__name__

        bystander = {'ok': 0, 'bad': [], 'worst': 0.0}
        stop = threading.Event()

        def bystand():
            with dm.client() as c:
                k = 0
                while not stop.is_set():
                    ok, errors, worst = small_jobs(c, 1, 100 + k)
                    k += 1
                    bystander['ok'] += ok
                    bystander['bad'] += errors if errors else ([] if ok else ['wrong result'])
                    bystander['worst'] = max(bystander['worst'], worst)

        t0 = time.monotonic()
        threads = [threading.Thread(target=sender), threading.Thread(target=bystand)]
        for t in threads:
            t.start()
        peak, closed_at = base, None
        while time.monotonic() - t0 < idle_s + 30:
            peak = max(peak, rss_kib(pid))
            if peer_closed(s):
                closed_at = time.monotonic() - t0
                break
            time.sleep(0.05)   # sampling interval of the memory watch
        if closed_at is not None:
            wait_until(lambda: rss_kib(pid) < base + 32 * 1024, 10)
        after = rss_kib(pid)
        st = watch.stats()
        stop.set()
        s.close()
        for t in threads:
            t.join()
        done = sum(r['done'] for r in st['jobs'])
        grow = (peak - base) / 1024.0
        print('# unread replies: %d of %d requests sent (%s), daemon RSS baseline %.1f MiB, peak +%.1f MiB, after close +%.1f MiB; '
              'closed %s; STATS: %d timed out, %d jobs done; bystander %d right, problems %s, slowest %.3f s%s'
              % (sent['n'], n_jobs, sent['error'], base / 1024.0, grow, (after - base) / 1024.0,
                 'after %.2f s' % closed_at if closed_at is not None else 'never (%.0f s watched)' % (idle_s + 30),
                 st['connections_timed_out'], done, bystander['ok'], bystander['bad'][:2], bystander['worst'],
                 ' (ASan build: RSS includes its quarantine)' if asan else ''), flush=True)
        row('a client pipelining 150 x 4 MiB replies, never reading', 'memory bounded, closed after --idle-timeout 2 s',
            'RSS peak +%.0f MiB, %s, after close +%.0f MiB' % (grow, 'closed after %.2f s' % closed_at if closed_at is not None
                                                                else 'never closed', (after - base) / 1024.0),
            (asan or grow <= bound_mib) and closed_at is not None)
        tap.check(asan or grow <= bound_mib, 'a client that never reads keeps the daemon\'s memory bounded: RSS peak +%.1f MiB <= %d MiB%s'
                  % (grow, bound_mib, ' (ASan build: not asserted)' if asan else ''))
        tap.check(closed_at is not None and closed_at >= idle_s - 0.05 and st['connections_timed_out'] == 1 and
                  'without the peer reading' in dm.log(),
                  'it is closed once its replies waited --idle-timeout %.0f s unread (%s, STATS connections_timed_out %d)'
                  % (idle_s, 'after %.2f s' % closed_at if closed_at is not None else 'not closed', st['connections_timed_out']))
        tap.check(closed_at is not None and (asan or (after - base) <= 32 * 1024),
                  'its memory goes back once it is closed (+%.1f MiB%s)' % ((after - base) / 1024.0,
                                                                          '; ASan build: not asserted' if asan else ''))
        tap.check(bystander['ok'] >= 5 and not bystander['bad'] and bystander['worst'] < 2.0,
                  'another client\'s jobs succeed throughout (%d right, problems %s, slowest %.3f s)'
                  % (bystander['ok'], bystander['bad'][:2], bystander['worst']))
        watch.close()
        check_stopped(tap, dm, 'unread replies: daemon stopped cleanly')


# ---------------------------------------------------------------- 3. shutdown that never ends
def test_shutdown_timeout(tap, binary, timeout_s):
    what = '--shutdown-timeout %s' % ('%g s' % timeout_s if timeout_s is not None else 'default (10 s)')
    deadline = timeout_s if timeout_s is not None else 10.0
    extra = ('--idle-timeout', '600') + (('--shutdown-timeout', '%g' % timeout_s) if timeout_s is not None else ())
    name = 'SIGTERM while a client leaves its replies unread, %s: exit 0 within the deadline + %.0f s, socket and lock removed' \
        % (what, SLACK_S)
    try:
        dm = vkr_testlib.Daemon(binary, backend='cpu', extra=extra)
    except RuntimeError as e:
        tap.check(False, '%s (the daemon did not start: %s)' % (name, str(e).splitlines()[0]))
        row('SIGTERM, replies left unread, %s' % what, 'exit 0 within %.0f s + %.0f s' % (deadline, SLACK_S),
            'the daemon did not start (unknown option?)', False)
        return
    x = np.ones((1, 1, 512, 512), np.float32)
    body = v.pack_submit_body(x.shape, x.tobytes(), mode='nearest', scale_factor=2.0, backend='cpu')
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(dm.socket)
        s.setblocking(False)
        frames = b''.join(v.pack_header(v.MSG_SUBMIT, rid, len(body)) + body for rid in range(1, 31))
        with dm.client() as watch:
            pos = 0
            t_end = time.monotonic() + 30
            # feed what the daemon takes until 10 jobs are done (their replies cannot all be written)
            while time.monotonic() < t_end and sum(r['done'] for r in watch.stats()['jobs']) < 10:
                try:
                    pos += s.send(frames[pos:pos + MIB]) if pos < len(frames) else 0
                except BlockingIOError:
                    time.sleep(0.01)
            done = sum(r['done'] for r in watch.stats()['jobs'])
        t0 = time.monotonic()
        dm.proc.send_signal(signal.SIGTERM)
        try:
            status = dm.proc.wait(timeout=deadline + SLACK_S)
        except subprocess.TimeoutExpired:
            status = None
        took = time.monotonic() - t0
        lock = dm.socket + '.lock'
        left = [p for p in (dm.socket, lock) if os.path.exists(p)]
        print('# %s: %d jobs done, replies unread; SIGTERM -> %s after %.2f s; left behind: %s'
              % (what, done, 'exit %s' % status if status is not None else 'still running', took, left or 'nothing'), flush=True)
        row('SIGTERM, replies left unread, %s' % what, 'exit 0 within %.0f s + %.0f s, socket and lock removed' % (deadline, SLACK_S),
            '%s after %.2f s, left %s' % ('exit %s' % status if status is not None else 'still running', took, left or 'nothing'),
            status == 0 and took <= deadline + SLACK_S and not left)
        tap.check(status == 0 and took <= deadline + SLACK_S and not left and '--shutdown-timeout' in dm.log(),
                  '%s (%s after %.2f s, left %s)' % (name, 'exit %s' % status if status is not None else 'still running', took, left))
    finally:
        s.close()
        if dm.proc.poll() is None:
            dm.proc.kill()
            dm.proc.wait()
        shutil.rmtree(dm.dir, ignore_errors=True)


# ---------------------------------------------------------------- 4. SIGHUP
def test_sighup(tap, binary):
    with running_daemon(binary, backend='cpu') as dm:
        dm.proc.send_signal(signal.SIGHUP)
        logged = wait_until(lambda: 'SIGHUP' in dm.log() or dm.proc.poll() is not None, 5)
        alive = dm.proc.poll() is None
        ok = 0
        if alive:
            with dm.client() as c:
                dm.proc.send_signal(signal.SIGHUP)   # a second one, with a client connected
                ok = small_jobs(c, 5, 9)[0]
        print('# SIGHUP: %s; log line %s; %d of 5 jobs right after it'
              % ('daemon running' if alive else 'daemon died with status %s' % dm.proc.returncode,
                 logged and 'SIGHUP' in dm.log(), ok), flush=True)
        row('SIGHUP', 'logged and ignored, serves on, clean stop later',
            'running, %d/5 jobs right' % ok if alive else 'died, status %s, socket %s and lock %s left' % (
                dm.proc.returncode, os.path.exists(dm.socket), os.path.exists(dm.socket + '.lock')), alive and ok == 5)
        tap.check(alive and ok == 5 and 'SIGHUP: ignored' in dm.log(),
                  'SIGHUP is logged and ignored: the daemon serves on (%s, %d of 5 jobs right)'
                  % ('running' if alive else 'died with %s' % dm.proc.returncode, ok))
        if alive:
            check_stopped(tap, dm, 'after SIGHUP the daemon stops cleanly with SIGTERM (exit 0, socket removed)')
            tap.check(not os.path.exists(dm.socket + '.lock'), 'its lock file is removed too')
        else:
            tap.check(False, 'after SIGHUP the daemon stops cleanly (it died: socket %s, lock %s left)'
                      % (os.path.exists(dm.socket), os.path.exists(dm.socket + '.lock')))
            tap.check(False, 'its lock file is removed too')


# ---------------------------------------------------------------- 5. the lock comes first
def test_lock_first(tap, binary):
    with running_daemon(binary, backend='cpu') as dm:
        cache = tempfile.mkdtemp(prefix='vkr-cache-')
        try:
            t0 = time.monotonic()
            p = subprocess.run([binary, '--socket', dm.socket, '--backend', 'vulkan', '--cache-dir', cache, '-v'],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
            took = time.monotonic() - t0
            cached = os.listdir(cache)
            vulkan_lines = [ln for ln in p.stdout.splitlines() if 'vulkan' in ln.lower()]
            print('# second daemon on a busy socket: exit %d after %.3f s; %d Vulkan log lines; cache dir holds %s; says: %s'
                  % (p.returncode, took, len(vulkan_lines), cached or 'nothing',
                     [ln for ln in p.stdout.splitlines() if 'lock' in ln][:1]), flush=True)
            row('a second --backend vulkan daemon on a busy socket', 'exit 1 naming the lock < 0.5 s, no Vulkan, no cache',
                'exit %d after %.3f s, %d Vulkan lines, cache %s' % (p.returncode, took, len(vulkan_lines), cached or 'none'),
                p.returncode == 1 and took < 0.5 and not cached and not vulkan_lines)
            tap.check(p.returncode == 1 and '.lock' in p.stdout and 'another vkresampled holds its lock' in p.stdout,
                      'a second daemon on a busy socket exits 1 with a message naming the lock (exit %d)' % p.returncode)
            tap.check(took < 0.5 and not cached and not vulkan_lines,
                      'it fails before any backend starts: %.3f s < 0.5 s, no Vulkan log line (%d), no pipeline cache written (%s)'
                      % (took, len(vulkan_lines), cached or 'none'))
            tap.check(vkr_testlib.job_ok(dm.client(), 'cpu', 4), 'the first daemon serves on')
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        check_stopped(tap, dm, 'lock first: the first daemon stopped cleanly')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    args = ap.parse_args()
    tap = Tap()
    test_header_hog(tap, args.daemon)
    test_refused_mid_body(tap, args.daemon)
    test_unread_replies(tap, args.daemon)
    test_shutdown_timeout(tap, args.daemon, 1.0)
    test_shutdown_timeout(tap, args.daemon, None)
    test_sighup(tap, args.daemon)
    test_lock_first(tap, args.daemon)
    vkr_testlib.print_fault_rows('issue 11 fault rows', MATRIX, (52, 52))
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/python3
"""Service behaviour of a real vkresampled: socket file rules, malformed frames (answered or the
connection closed, while the daemon and the other connections carry on), backend availability,
many concurrent clients, graceful SIGTERM with a job in flight, the vkresample CLI (every
command, against torch), STATS, and systemd socket activation.

usage: test_service.py DAEMON CLI [--backend cpu|vulkan]     (TAP output)"""
import argparse
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading

os.environ['ATEN_CPU_CAPABILITY'] = 'default'   # the contract: torch's portable kernels
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import check_stopped, Daemon, Tap, running_daemon, vkresample, wait_until  # noqa: E402

MAGIC = 0x31524B56
HEADER = struct.Struct('<IHHIIIIQ')
PING, PONG, SUBMIT, RESULT, ERROR = 1, 2, 3, 4, 5


def raw_connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    return s


def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_frame(s):
    """(type, request_id, body) or None when the daemon closed the connection."""
    h = recv_exact(s, HEADER.size)
    if h is None:
        return None
    magic, version, mtype, flags, rid, nfds, reserved, blen = HEADER.unpack(h)
    body = recv_exact(s, blen) if blen else b''
    return mtype, rid, body


def error_of(body):
    code, flen, mlen = struct.unpack_from('<iHH', body)
    return code, body[8:8 + flen].decode(), body[8 + flen:8 + flen + mlen].decode()


def closed_by_peer(s):
    try:
        return s.recv(1) == b''
    except ConnectionResetError:
        return True


def one_line(text):
    """Process output for a TAP description: one line."""
    return ' | '.join(text.strip().splitlines())


def nearest_x2(x):
    return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)


def job_ok(client, backend, seed):
    x = np.random.default_rng(seed).standard_normal((1, 3, 7, 9)).astype(np.float32)
    y = client.interpolate(x, scale_factor=2.0, mode='nearest', backend=backend)
    return np.array_equal(y, nearest_x2(x))


def test_socket_and_frames(tap, binary, backend):
    with running_daemon(binary, backend=backend) as d:
        mode = stat.S_IMODE(os.lstat(d.socket).st_mode)
        tap.check(mode == 0o600, 'socket file mode is 0600 (got %o)' % mode)
        with d.client() as c:
            info = c.ping()
            tap.check(bool(info.get('device')), 'ping answers with a device name (%s)' % info)

        bystander = d.client()
        tap.check(job_ok(bystander, backend, 1), 'bystander connection runs a job before the attacks')

        # bad magic: an ERROR frame naming the field, then the connection is closed
        s = raw_connect(d.socket)
        s.sendall(HEADER.pack(0xDEADBEEF, 1, PING, 0, 5, 0, 0, 0))
        f = recv_frame(s)
        ok = f is not None and f[0] == ERROR and f[1] == 5 and error_of(f[2])[:2] == (-2, 'magic')
        tap.check(ok, 'bad magic -> ERROR VKR_E_PROTOCOL [magic] (%s)' % (error_of(f[2]) if f else None,))
        tap.check(closed_by_peer(s), 'bad magic -> connection closed')
        s.close()

        for what, hdr, code, field in [
                ('version 9', HEADER.pack(MAGIC, 9, PING, 0, 6, 0, 0, 0), -3, 'version'),
                ('type 77', HEADER.pack(MAGIC, 1, 77, 0, 7, 0, 0, 0), -2, 'type'),
                ('RESULT sent by a client', HEADER.pack(MAGIC, 1, RESULT, 0, 8, 0, 0, 0), -2, 'type'),
                ('body_len 2^64-1', HEADER.pack(MAGIC, 1, SUBMIT, 0, 9, 0, 0, 2**64 - 1), -4, 'body_len'),
                ('n_fds claimed but none sent', HEADER.pack(MAGIC, 1, PING, 0, 10, 2, 0, 0), -2, 'n_fds')]:
            s = raw_connect(d.socket)
            s.sendall(hdr)
            f = recv_frame(s)
            got = error_of(f[2])[:2] if f and f[0] == ERROR else f
            tap.check(got == (code, field), '%s -> ERROR (%d, %s) (got %s)' % (what, code, field, got))
            tap.check(closed_by_peer(s), '%s -> connection closed' % what)
            s.close()

        # a well-framed but invalid job: ERROR, and the connection carries on
        s = raw_connect(d.socket)
        body = bytearray(152)
        struct.pack_into('<HHHH', body, 0, 1, 2, 1, 0)
        struct.pack_into('<H', body, 8, 99)                      # mode 99
        s.sendall(HEADER.pack(MAGIC, 1, SUBMIT, 0, 11, 0, 0, len(body)) + bytes(body))
        f = recv_frame(s)
        got = error_of(f[2])[:2] if f and f[0] == ERROR else f
        tap.check(got == (-6, 'mode'), 'job with mode 99 -> ERROR (VKR_E_NOT_IMPLEMENTED, mode) (got %s)' % (got,))
        s.sendall(HEADER.pack(MAGIC, 1, PING, 0, 12, 0, 0, 0))
        f = recv_frame(s)
        tap.check(f is not None and f[0] == PONG and f[1] == 12, 'same connection still answers a PING after a refused job')
        s.close()

        # disconnects mid-header and mid-body
        s = raw_connect(d.socket)
        s.sendall(HEADER.pack(MAGIC, 1, SUBMIT, 0, 13, 0, 0, 4096)[:17])
        s.close()
        s = raw_connect(d.socket)
        s.sendall(HEADER.pack(MAGIC, 1, SUBMIT, 0, 14, 0, 0, 4096) + b'\0' * 100)
        s.close()
        tap.check(job_ok(bystander, backend, 2), 'bystander connection still correct after every malformed frame')
        tap.check(d.proc.poll() is None, 'daemon still running')
        bystander.close()
        check_stopped(tap, d, 'daemon stopped with exit 0 and removed its socket')


def test_backend_availability(tap, binary):
    with running_daemon(binary, backend='cpu') as d:
        with d.client() as c:
            try:
                c.interpolate(np.zeros((1, 2, 3, 3), np.float32), size=4, backend='vulkan')
                tap.check(False, 'a vulkan job on a --backend cpu daemon was accepted')
            except vkresample.VkresampleError as e:
                tap.check(e.code == -9 and 'vulkan' in e.message, 'vulkan job on --backend cpu -> VKR_E_BACKEND_UNAVAILABLE: %s' % e.message)
        d.stop()


def test_socket_path_rules(tap, binary, backend):
    with running_daemon(binary, backend=backend) as first:
        second = subprocess.run([binary, '--socket', first.socket, '--backend', 'cpu'], capture_output=True, text=True, timeout=60)
        tap.check(second.returncode == 1 and 'in use' in second.stderr, 'a live socket is refused (exit %d: %s)' %
                  (second.returncode, second.stderr.strip().splitlines()[-1:] if second.stderr else ''))
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        tap.check(os.path.exists(first.socket), 'kill -9 leaves a stale socket file')
        again = Daemon(binary, backend='cpu', socket_path=first.socket)
        with again.client() as c:
            tap.check(job_ok(c, 'cpu', 3), 'a stale socket is replaced and served')
        again.stop()
    d = tempfile.mkdtemp(prefix='vkr-test-')
    link = os.path.join(d, 'link.sock')
    os.symlink(os.path.join(d, 'elsewhere'), link)
    r = subprocess.run([binary, '--socket', link, '--backend', 'cpu'], capture_output=True, text=True, timeout=60)
    tap.check(r.returncode == 1 and 'symbolic link' in r.stderr, 'a symlink at the socket path is refused')
    plain = os.path.join(d, 'plain')
    open(plain, 'w').close()
    r = subprocess.run([binary, '--socket', plain, '--backend', 'cpu'], capture_output=True, text=True, timeout=60)
    tap.check(r.returncode == 1 and 'not a socket' in r.stderr and os.path.exists(plain), 'a regular file at the socket path is left alone')


def test_concurrent_clients(tap, binary, backend, n_clients=16, jobs=12):
    with running_daemon(binary, backend=backend) as d:
        failures = []

        def worker(k):
            try:
                with d.client() as c:
                    for j in range(jobs):
                        if not job_ok(c, 'auto', 1000 * k + j):
                            failures.append((k, j, 'wrong result'))
            except Exception as e:  # noqa: BLE001
                failures.append((k, -1, repr(e)))
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        tap.check(not failures, '%d clients x %d jobs at once, every reply correct (%s)' % (n_clients, jobs, failures[:3]))
        d.stop()


def test_sigterm_with_job_in_flight(tap, binary, backend):
    # the drain, not its deadline (test_admission.py has that): a 128 MiB reply under valgrind
    # takes longer to send than the default 10 s --shutdown-timeout
    with running_daemon(binary, backend=backend, extra=('--verbose', '--shutdown-timeout', '120')) as d:
        x = np.random.default_rng(5).standard_normal((8, 16, 256, 256)).astype(np.float32)
        c = d.client()
        result = {}

        def submit():
            try:
                result['y'] = c.interpolate(x, scale_factor=2.0, mode='nearest', backend=backend)
            except Exception as e:  # noqa: BLE001
                result['e'] = e
        t = threading.Thread(target=submit)
        t.start()
        # the daemon logs "queued" at --verbose once it holds the job (or answers it, if quicker)
        wait_until(lambda: 'queued' in d.log())
        d.proc.send_signal(signal.SIGTERM)
        t.join(timeout=120)
        ok = 'y' in result and np.array_equal(result['y'], nearest_x2(x))
        tap.check(ok, 'SIGTERM while a job is in flight: the job is answered correctly (%s)' % result.get('e'))
        status = d.proc.wait(timeout=60)
        tap.check(status == 0 and not os.path.exists(d.socket), 'then exit 0 (got %s) and the socket is removed' % status)
        c.close()


def test_cli(tap, binary, cli, backend):
    with running_daemon(binary, backend=backend) as d:
        tmp = tempfile.mkdtemp(prefix='vkr-cli-')
        x = np.random.default_rng(9).standard_normal((2, 3, 5, 4)).astype(np.float32)
        src, dst = os.path.join(tmp, 'in.npy'), os.path.join(tmp, 'out.npy')
        np.save(src, x)
        run = lambda *a: subprocess.run([cli, '--socket', d.socket, *a], capture_output=True, text=True, timeout=60)  # noqa: E731
        r = run('interpolate', src, dst, '--mode', 'nearest', '--scale-factor', '2')
        tap.check(r.returncode == 0 and np.array_equal(np.load(dst), nearest_x2(x)), 'CLI interpolate x2 nearest (exit %d %s)' % (r.returncode, one_line(r.stderr)))
        os.unlink(dst)
        r = run('interpolate', src, dst, '--mode', 'nearest', '--size', '3', '--align-corners')
        tap.check(r.returncode == 1 and 'align_corners' in r.stderr and not os.path.exists(dst),
                  'CLI refused job: exit 1, message on stderr, no output file (exit %d: %s)' % (r.returncode, one_line(r.stderr)))
        r = run('interpolate', src, dst, '--mode', 'nearest', '--bogus')
        tap.check(r.returncode == 2 and not os.path.exists(dst), 'CLI usage error: exit 2 (got %d)' % r.returncode)
        np.save(src, x.astype(np.float64))
        r = run('interpolate', src, dst, '--mode', 'nearest', '--size', '3')
        tap.check(r.returncode == 1 and 'f8' in r.stderr and not os.path.exists(dst), 'CLI refuses a float64 .npy (exit %d: %s)' % (r.returncode, one_line(r.stderr)))
        r = run('ping')
        tap.check(r.returncode == 0 and r.stdout.strip() != '', 'CLI ping (exit %d: %r)' % (r.returncode, r.stdout.strip()))
        r = subprocess.run([cli, '--help'], capture_output=True, text=True, timeout=60)
        tap.check(r.returncode == 0 and 'interpolate' in r.stdout and 'ping' in r.stdout, 'CLI --help')
        d.stop()


def test_cli_grid(tap, binary, cli, backend):
    """The CLI's grid-sample, affine-grid and affine-sample against torch, and their refusals:
    exit 1, message, no output file.  The jobs ask for the CPU backend (bit-exact; the backends
    themselves are the conformance tests' business) whatever the daemon's default is."""
    def close(got, ref):
        return got.shape == ref.shape and np.array_equal(got, ref)

    with running_daemon(binary, backend=backend) as d:
        tmp = tempfile.mkdtemp(prefix='vkr-cli-grid-')
        path = lambda name: os.path.join(tmp, name)  # noqa: E731
        run = lambda *a: subprocess.run([cli, '--socket', d.socket, *a, '--backend', 'cpu'], capture_output=True, text=True, timeout=60)  # noqa: E731
        rng = np.random.default_rng(21)
        x = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
        grid = rng.uniform(-1.2, 1.2, (2, 4, 5, 2)).astype(np.float32)
        x5 = rng.standard_normal((1, 2, 4, 5, 6)).astype(np.float32)
        grid5 = rng.uniform(-1.2, 1.2, (1, 3, 2, 4, 3)).astype(np.float32)
        theta = np.array([[[0.9, -0.2, 0.1], [0.3, 1.1, -0.05]], [[1.2, 0.0, 0.2], [0.1, 0.8, 0.0]]], np.float32)
        theta3 = rng.uniform(-1, 1, (1, 3, 4)).astype(np.float32)
        for name, arr in (('x', x), ('grid', grid), ('x5', x5), ('grid5', grid5), ('theta', theta), ('theta3', theta3)):
            np.save(path(name + '.npy'), arr)

        for mode, pad, ac in (('bilinear', 'zeros', False), ('nearest', 'border', True), ('bicubic', 'reflection', False)):
            out = path('gs.npy')
            flags = ['--align-corners'] if ac else []
            r = run('grid-sample', path('x.npy'), path('grid.npy'), out, '--mode', mode, '--padding-mode', pad, *flags)
            ref = F.grid_sample(torch.from_numpy(x), torch.from_numpy(grid), mode=mode, padding_mode=pad, align_corners=ac).numpy()
            ok = r.returncode == 0 and close(np.load(out), ref)
            tap.check(ok, 'CLI grid-sample 4-D %s/%s align_corners=%s matches torch (exit %d %s)' % (mode, pad, ac, r.returncode, one_line(r.stderr)))
        out = path('gs5.npy')
        r = run('grid-sample', path('x5.npy'), path('grid5.npy'), out)
        ref = F.grid_sample(torch.from_numpy(x5), torch.from_numpy(grid5), align_corners=False).numpy()
        tap.check(r.returncode == 0 and close(np.load(out), ref),
                  'CLI grid-sample 5-D with the defaults (bilinear, zeros) matches torch (exit %d %s)' % (r.returncode, one_line(r.stderr)))

        out = path('ag.npy')
        r = run('affine-grid', path('theta.npy'), out, '--size', '2,3,5,4')
        ref = F.affine_grid(torch.from_numpy(theta), [2, 3, 5, 4], align_corners=False).numpy()
        tap.check(r.returncode == 0 and close(np.load(out), ref), 'CLI affine-grid 2-D matches torch (exit %d %s)' % (r.returncode, one_line(r.stderr)))
        r = run('affine-grid', path('theta3.npy'), out, '--size', '1,2,3,4,5', '--align-corners')
        ref = F.affine_grid(torch.from_numpy(theta3), [1, 2, 3, 4, 5], align_corners=True).numpy()
        tap.check(r.returncode == 0 and close(np.load(out), ref),
                  'CLI affine-grid 3-D align_corners matches torch (exit %d %s)' % (r.returncode, one_line(r.stderr)))

        out = path('as.npy')
        r = run('affine-sample', path('x.npy'), path('theta.npy'), out, '--size', '5,8', '--mode', 'bicubic', '--padding-mode', 'border')
        g = F.affine_grid(torch.from_numpy(theta), [2, 3, 5, 8], align_corners=False)
        ref = F.grid_sample(torch.from_numpy(x), g, mode='bicubic', padding_mode='border', align_corners=False).numpy()
        tap.check(r.returncode == 0 and close(np.load(out), ref),
                  'CLI affine-sample bicubic/border equals grid_sample(affine_grid) (exit %d %s)' % (r.returncode, one_line(r.stderr)))

        for what, args, needle in (
                ('grid-sample, batch sizes differ', ('grid-sample', path('x5.npy'), path('grid.npy')), 'grid_sampler()'),
                ('grid-sample bicubic on 5-D', ('grid-sample', path('x5.npy'), path('grid5.npy'), '--mode', 'bicubic'), 'bicubic interpolation only supports 4D input'),
                ('affine-grid, size of 3', ('affine-grid', path('theta.npy'), '--size', '2,5,4'), 'affine_grid only supports 4D and 5D sizes'),
                ('affine-grid, theta batch 2 for N 1', ('affine-grid', path('theta.npy'), '--size', '1,3,5,4'), 'batch2'),
                ('affine-sample, size of 3 for a 4-D input', ('affine-sample', path('x.npy'), path('theta.npy'), '--size', '2,3,4'), 'affine_sample')):
            out = path('refused.npy')
            files = [a for a in args[1:] if a.endswith('.npy')]
            opts = [a for a in args[1:] if not a.endswith('.npy')]
            r = run(args[0], *files, out, *opts)
            tap.check(r.returncode == 1 and needle in r.stderr and not os.path.exists(out),
                      'CLI %s: exit 1, message on stderr, no output (exit %d: %s)' % (what, r.returncode, one_line(r.stderr)))
        for what, args in (('grid-sample --mode linear', ('grid-sample', path('x.npy'), path('grid.npy'), path('o.npy'), '--mode', 'linear')),
                           ('grid-sample --padding-mode constant', ('grid-sample', path('x.npy'), path('grid.npy'), path('o.npy'), '--padding-mode', 'constant')),
                           ('affine-grid without --size', ('affine-grid', path('theta.npy'), path('o.npy'))),
                           ('affine-grid --size of 6 values', ('affine-grid', path('theta.npy'), path('o.npy'), '--size', '1,1,1,1,1,1')),
                           ('affine-sample with one file too few', ('affine-sample', path('x.npy'), path('o.npy'), '--size', '3,3'))):
            r = run(*args)
            tap.check(r.returncode == 2 and not os.path.exists(path('o.npy')), 'CLI %s: usage error, exit 2 (got %d: %s)' % (what, r.returncode, one_line(r.stderr)))
        for command in ('grid-sample', 'affine-grid', 'affine-sample'):
            r = subprocess.run([cli, command, '--help'], capture_output=True, text=True, timeout=60)
            tap.check(r.returncode == 0 and ('Usage: vkresample [--socket PATH] %s' % command) in r.stdout and '--align-corners' in r.stdout,
                      'CLI %s --help' % command)
        d.stop()


def test_unread_replies(tap, binary, backend):
    """A client that sends requests and never reads the replies is throttled, not buffered: once
    its unsent replies pass the daemon's backlog limit the daemon stops reading it, its socket
    stops taking bytes, and other clients are served all the while."""
    with running_daemon(binary, backend=backend) as d:
        s = raw_connect(d.socket)
        s.setblocking(False)
        chunk = b''.join(HEADER.pack(MAGIC, 1, PING, 0, i, 0, 0, 0) for i in range(1024))   # 32 KiB of PINGs
        sent, limit = 0, 64 << 20
        while sent < limit:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                break
        tap.check(sent < limit, 'a client that never reads: the daemon stops reading it after %d KiB of PINGs (limit of the test: %d KiB)'
                  % (sent >> 10, limit >> 10))
        with d.client() as other:
            tap.check(job_ok(other, backend, 7), 'meanwhile another client is served')
        s.close()
        with d.client() as other:
            for _ in range(100000):
                if other.stats()['clients'] == 1:
                    break
            tap.check(other.stats()['clients'] == 1 and job_ok(other, backend, 8), 'the throttled client\'s connection is cleaned up when it closes')
        d.stop()


def test_stats(tap, binary, cli, backend):
    """STATS through the Python module and the CLI (text and --json) count what happened."""
    with running_daemon(binary, backend=backend) as d:
        with d.client() as c:
            device = c.ping()['device']
            x = np.random.default_rng(4).standard_normal((1, 2, 5, 6)).astype(np.float32)
            for _ in range(3):
                c.interpolate(x, size=4, mode='nearest')
            try:
                c.interpolate(x, size=4, mode='nearest', align_corners=True)
            except vkresample.VkresampleError:
                pass
            c.grid_sample(x, np.zeros((1, 3, 3, 2), np.float32), backend='cpu')
            st = c.stats()
        rows = {(r['op'], r['backend']): r for r in st['jobs']}
        interp = rows.get(('interpolate', backend), {})
        ok = (interp.get('done') == 3 and interp.get('failed') == 1 and rows.get(('grid_sample', 'cpu'), {}).get('done') == 1
              and st['device'] == device and st['workers'] == 4 and st['clients'] == 1 and st['queued'] == 0
              and st['bytes_in'] > 0 and st['bytes_out'] > 0 and st['latency_p50_us'] > 0)
        tap.check(ok, 'Client.stats(): 3 done + 1 failed interpolate, 1 grid_sample, device, workers, bytes, latency (%s)' % st)
        run = lambda *a: subprocess.run([cli, '--socket', d.socket, *a], capture_output=True, text=True, timeout=60)  # noqa: E731
        r = run('stats', '--json')
        try:
            js = json.loads(r.stdout)
        except ValueError:
            js = {}
        jrows = {(j['op'], j['backend']): j for j in js.get('jobs', [])}
        tap.check(r.returncode == 0 and js.get('device') == device and jrows.get(('interpolate', backend), {}).get('done') == 3
                  and jrows.get(('interpolate', backend), {}).get('failed') == 1 and js.get('uptime_ms', 0) >= st['uptime_ms'],
                  'CLI stats --json: the same counters (exit %d: %s)' % (r.returncode, one_line(r.stdout)))
        r = run('stats')
        tap.check(r.returncode == 0 and ('device: ' + device) in r.stdout and 'latency: p50' in r.stdout
                  and any(line.split()[:5] == ['interpolate', backend, '3', '1', '0'] for line in r.stdout.splitlines()),
                  'CLI stats: text with the device, latency and a row per op and backend (%s)' % one_line(r.stdout))
        r = run('stats', '--bogus')
        tap.check(r.returncode == 2, 'CLI stats --bogus: usage error, exit 2 (got %d)' % r.returncode)
        d.stop()


def test_socket_activation(tap, binary):
    """LISTEN_FDS / LISTEN_PID: the daemon serves the socket it is handed, does not unlink it, and
    refuses what sd_listen_fds would refuse."""
    tmp = tempfile.mkdtemp(prefix='vkr-activation-')
    os.chmod(tmp, 0o700)
    path = os.path.join(tmp, 'activated.sock')
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    fd = listener.fileno()

    def launch(listen_fds, own_pid=True):
        ready_r, ready_w = os.pipe()
        pid_expr = '$$' if own_pid else '1'
        script = 'exec 3<&%d; export LISTEN_FDS=%s LISTEN_PID=%s; exec "$@"' % (fd, listen_fds, pid_expr)
        proc = subprocess.Popen(['sh', '-c', script, 'sh', binary, '--backend', 'cpu', '--ready-fd', str(ready_w),
                                 '--socket', os.path.join(tmp, 'own.sock')],
                                pass_fds=(fd, ready_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(ready_w)
        with os.fdopen(ready_r, 'rb') as r:
            line = r.readline()
        return proc, line

    proc, line = launch('1')
    ok = line == b'ready\n'
    if ok:
        with vkresample.Client(path) as c:
            x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
            ok = np.array_equal(c.interpolate(x, scale_factor=2.0, mode='nearest'), nearest_x2(x))
    tap.check(ok and not os.path.exists(os.path.join(tmp, 'own.sock')),
              'socket activation: the daemon serves the socket it was handed as fd 3 and binds none of its own')
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    tap.check(proc.returncode == 0 and os.path.exists(path) and b'socket activation' in err,
              'socket activation: SIGTERM, exit 0, and the socket (systemd\'s) is left in place (exit %s)' % proc.returncode)

    proc, line = launch('2')
    _, err = proc.communicate(timeout=60)
    tap.check(line == b'' and proc.returncode == 1 and b'LISTEN_FDS=2' in err,
              'socket activation: LISTEN_FDS=2 is refused at start-up (exit %s: %s)' % (proc.returncode, one_line(err.decode())))

    proc, line = launch('1', own_pid=False)
    own = os.path.exists(os.path.join(tmp, 'own.sock'))
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    tap.check(line == b'ready\n' and own and proc.returncode == 0,
              'socket activation: LISTEN_PID of another process is ignored; the daemon binds --socket instead')
    listener.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('cli')
    ap.add_argument('--backend', default='cpu', choices=('cpu', 'vulkan'))
    args = ap.parse_args()
    tap = Tap()
    test_socket_and_frames(tap, args.daemon, args.backend)
    test_backend_availability(tap, args.daemon)
    test_socket_path_rules(tap, args.daemon, args.backend)
    test_concurrent_clients(tap, args.daemon, args.backend)
    test_sigterm_with_job_in_flight(tap, args.daemon, args.backend)
    test_cli(tap, args.daemon, args.cli, args.backend)
    test_cli_grid(tap, args.daemon, args.cli, args.backend)
    test_stats(tap, args.daemon, args.cli, args.backend)
    test_unread_replies(tap, args.daemon, args.backend)
    test_socket_activation(tap, args.daemon)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())

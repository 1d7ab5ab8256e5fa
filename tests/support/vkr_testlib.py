"""Test support shared by the Python tests: start a real vkresampled on a private socket in a
fresh 0700 directory, wait for its readiness line (no sleeps), stop it with SIGTERM and check that
it exited cleanly, removed its socket and (with --vk-validation) reported no validation message.

Every test imports the client module from client/python (the same module users script with)."""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'client', 'python'))

import vkresample  # noqa: E402  (client/python/vkresample.py)


class Daemon:
    """A running daemon: .socket, .proc, .log() (stderr so far)."""

    def __init__(self, binary, backend='cpu', validation=False, extra=(), socket_path=None):
        self.dir = tempfile.mkdtemp(prefix='vkr-test-')
        os.chmod(self.dir, 0o700)
        self.socket = socket_path or os.path.join(self.dir, 'vkresample.sock')
        self.stderr_path = os.path.join(self.dir, 'daemon.log')
        self.validation = validation
        ready_r, ready_w = os.pipe()
        # VKR_DAEMON_WRAPPER (set by `meson test --setup=valgrind`) runs the daemon under a tool
        wrapper = os.environ.get('VKR_DAEMON_WRAPPER', '').split()
        args = [*wrapper, binary, '--socket', self.socket, '--backend', backend, '--ready-fd', str(ready_w), *extra]
        if validation:
            args.append('--vk-validation')
        env = dict(os.environ)
        with open(self.stderr_path, 'wb') as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         pass_fds=(ready_w,), env=env)
        os.close(ready_w)
        line = b''
        with os.fdopen(ready_r, 'rb') as r:
            line = r.readline()
        if line != b'ready\n':
            self.proc.wait(timeout=60)
            raise RuntimeError('daemon did not become ready (exit %s):\n%s' % (self.proc.returncode, self.log()))

    def log(self):
        with open(self.stderr_path, 'r', errors='replace') as f:
            return f.read()

    def client(self):
        return vkresample.Client(self.socket)

    def stop(self, expect_status=0):
        """SIGTERM, wait, and assert a clean stop; returns the daemon's log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout=600)
        log = self.log()
        problems = []
        if status != expect_status:
            problems.append('daemon exit status %s, expected %s' % (status, expect_status))
        if expect_status == 0 and os.path.exists(self.socket):
            problems.append('socket %s left behind' % self.socket)
        if self.validation and 'vulkan validation' in log:
            problems.append('validation layer reported messages')
        if problems:
            raise AssertionError('; '.join(problems) + '\n--- daemon log ---\n' + log)
        return log


@contextlib.contextmanager
def running_daemon(binary, **kw):
    d = Daemon(binary, **kw)
    try:
        yield d
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def check_stopped(tap, daemon, what='daemon stopped cleanly'):
    """Stop the daemon as one TAP check: Daemon.stop's assertions (exit status 0, socket removed,
    no validation message) pass, or the check fails with what went wrong and the daemon's log."""
    try:
        daemon.stop()
    except AssertionError as e:
        return tap.check(False, '%s: %s' % (what, e))
    return tap.check(True, what)


def print_fault_rows(title, rows, widths=(40, 50)):
    """A fault table as TAP comments: rows of (scenario, expected, observed, ok); a row that
    failed says so in its observed column."""
    fmt = '# %%-%ds | %%-%ds | %%s' % widths
    print('# ' + title)
    print(fmt % ('scenario', 'expected', 'observed'))
    for name, expected, observed, ok in rows:
        print(fmt % (name, expected, ('' if ok else 'FAILED: ') + observed))


class Tap:
    """TAP lines for meson (protocol: 'tap')."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, ok, what):
        self.n += 1
        if not ok:
            self.failed += 1
        print('%s %d - %s' % ('ok' if ok else 'not ok', self.n, what), flush=True)
        return ok

    def done(self):
        print('1..%d' % self.n, flush=True)
        return 1 if self.failed else 0


def wait_until(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


# ---------------------------------------------------------------- raw frames and daemon resources
import fcntl  # noqa: E402
import numpy as np  # noqa: E402

MEMFD_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW


def memfd(data=b'', size=None, seals=MEMFD_SEALS):
    """A memfd holding data (padded to size), with seals added (0: none)."""
    fd = os.memfd_create('vkr-test', os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, bytes(data))
    if size is not None:
        os.ftruncate(fd, size)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


def exchange(client, frame, fds=()):
    """Send a raw frame with descriptors; return the reply Frame, or None when the daemon closed
    the connection.  The daemon may answer and close before all of a refused frame is sent: its
    reply is read all the same."""
    try:
        client.send_raw(frame, fds)
    except vkresample.VkresampleError:
        pass
    try:
        return client.recv_frame(max_body=1 << 30)
    except vkresample.VkresampleError:
        return None


def closed_by_peer(client):
    """True when the daemon has closed the connection (end of stream, or a reset because our
    unread bytes were still in its queue)."""
    try:
        return client.recv_frame() is None
    except vkresample.VkresampleError as e:
        return e.code == vkresample.VKR_E_IO


def error_of(frame):
    """(code, field, message) of an ERROR frame, or None for anything else."""
    if frame is None or frame.type != vkresample.MSG_ERROR:
        return None
    return vkresample.unpack_error(frame.body)


def open_fds(pid):
    return len(os.listdir('/proc/%d/fd' % pid))


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS:'))


def nearest_x2(x):
    return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)


def job_ok(client, backend, seed, shape=(1, 3, 7, 9)):
    """One nearest x2 job checked against numpy."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    y = client.interpolate(x, scale_factor=2.0, mode='nearest', backend=backend)
    return np.array_equal(y, nearest_x2(x))


def built_with_asan(pid):
    """True when the process runs AddressSanitizer: its memory then includes ASan's shadow and
    freed-memory quarantine, so resident-memory bounds meant for the product do not apply."""
    try:
        with open('/proc/%d/maps' % pid) as f:
            return 'libasan' in f.read()
    except OSError:
        return False


def shared_dir(prefix, scripts):
    """A 0755 directory another uid (setpriv) can traverse, holding a copy of the client module
    and the scripts given as {file name: source text}, each 0644."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    shutil.copy(os.path.join(HERE, '..', '..', 'client', 'python', 'vkresample.py'), os.path.join(d, 'vkresample.py'))
    for name, text in scripts.items():
        with open(os.path.join(d, name), 'w') as f:
            f.write(text)
    for name in ['vkresample.py', *scripts]:
        os.chmod(os.path.join(d, name), 0o644)
    return d


def can_switch_uid():
    """None when this process can run a client as another uid (root, and setpriv(1) installed),
    else why not (the reason a test SKIPs with)."""
    if os.geteuid() != 0:
        return 'not root'
    if shutil.which('setpriv') is None:
        return 'setpriv(1) not installed'
    return None

#!/usr/bin/python3
"""Who may connect to a real vkresampled (issue 7, "who may connect"):

- the socket file: 0600 even when the daemon starts under umask 000, --socket-mode and
  --socket-group widen it only after bind(), malformed values are usage errors;
- the lock file PATH.lock: a lock held elsewhere refuses a daemon (even with no socket file), of
  two daemons started at once on one path exactly one serves, a symlink at PATH.lock is refused,
  a stale socket and lock file are taken over, a clean stop removes both;
- SO_PEERCRED at accept: a client running as another uid (setpriv) gets one ERROR
  VKR_E_PERMISSION naming its uid (request_id 0) and is closed, while the daemon's own clients
  carry on (the C library, through `vkresample ping`, reports the same code and message);
  --allow-uid and --allow-group (primary or supplementary group) let it in; a daemon
  running as another uid refuses root (root is not implicitly allowed);
- per-uid caps: --max-connections-per-uid refuses one connection too many with VKR_E_BUSY
  [connections] without touching another uid's, and --max-bytes-per-uid refuses a job whose
  bytes would take its uid over the cap (VKR_E_BUSY while other jobs hold bytes,
  VKR_E_TOO_LARGE when the job alone is over it);
- --help names every flag of this work, and each malformed value is a usage error naming the flag.

The second-uid checks need root and setpriv(1); without them they are reported as TAP SKIPs.
The refusal by credentials runs on a socket of mode 0666 in a 0755 directory, so that the kernel's
file permissions let the other uid reach the socket and the refusal is the daemon's own.

usage: test_access.py DAEMON CLI      (TAP output)"""
import argparse
import fcntl
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import Daemon, Tap, running_daemon, vkresample as v  # noqa: E402
import vkr_testlib  # noqa: E402

NOBODY = 65534

# A client that another uid runs (setpriv): it imports a copy of the Python module from its own
# directory (the checkout may not be readable by that uid), pings, runs one nearest x2 job and
# prints what happened as JSON.  'raw' reads the daemon's first frame without sending anything.
OTHER_UID_CLIENT = r'''
import json, os, socket, struct, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
import vkresample as v
path, what = sys.argv[1], sys.argv[2]
out = {'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups()}
if what == 'raw':
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(path)
    data = b''
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        out['end'] = 'eof'
    except ConnectionResetError:
        out['end'] = 'reset'
    if len(data) >= 32:
        h = struct.unpack_from('<IHHIIIIQ', data)
        out['type'], out['request_id'] = h[2], h[4]
        out['error'] = list(v.unpack_error(data[32:32 + h[7]]))
    out['bytes'] = len(data)
else:
    try:
        with v.Client(path, timeout=30) as c:
            out['ping'] = c.ping()
            x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
            y = c.interpolate(x, scale_factor=2.0, mode='nearest')
            out['job_ok'] = bool(np.array_equal(y, np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)))
    except v.VkresampleError as e:
        out['error'] = [e.code, e.field, e.message]
print(json.dumps(out))
'''


def skip(tap, what, why):
    tap.n += 1
    print('ok %d - %s # SKIP %s' % (tap.n, what, why), flush=True)


def nearest_x2(x):
    return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)


def job_ok(client, seed=0, shape=(1, 3, 7, 9)):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return np.array_equal(client.interpolate(x, scale_factor=2.0, mode='nearest', backend='cpu'), nearest_x2(x))


def shared_dir():
    """A 0755 directory another uid can traverse, with the client module and client.py."""
    return vkr_testlib.shared_dir('vkr-access-', {'client.py': OTHER_UID_CLIENT})


def shared_cli(d, cli):
    """A copy of the CLI and the libvkresample.so beside it (its RUNPATH is $ORIGIN) in the shared
    directory d: the checkout may not be reachable by another uid (a clone under a 0700 mktemp
    directory).  Returns the copy's path."""
    for name in (os.path.basename(cli), 'libvkresample.so'):
        dst = os.path.join(d, name)
        shutil.copy(os.path.join(os.path.dirname(os.path.abspath(cli)), name), dst)
        os.chmod(dst, 0o755)
    return os.path.join(d, os.path.basename(cli))


def run_as(d, sock, what, uid=NOBODY, gid=NOBODY, groups=None):
    """Run the client script as uid/gid (with supplementary groups, or none); its JSON."""
    cmd = ['setpriv', '--reuid=%d' % uid, '--regid=%d' % gid]
    cmd += ['--groups=' + ','.join(str(g) for g in groups)] if groups else ['--clear-groups']
    cmd += ['/usr/bin/python3', '-s', os.path.join(d, 'client.py'), sock, what]
    env = {'PATH': '/usr/bin:/bin', 'HOME': d, 'PYTHONDONTWRITEBYTECODE': '1'}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=d)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {'exit': r.returncode, 'stderr': r.stderr[-500:]}



def start_raw(binary, sock, extra=(), preexec=None):
    """A daemon process on sock, not waited for: (Popen, read end of its ready pipe)."""
    r, w = os.pipe()
    wrapper = os.environ.get('VKR_DAEMON_WRAPPER', '').split()
    p = subprocess.Popen([*wrapper, binary, '--socket', sock, '--backend', 'cpu', '--ready-fd', str(w), *extra],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(w,),
                         preexec_fn=preexec)
    os.close(w)
    return p, r


def test_socket_file(tap, binary):
    old = os.umask(0)
    try:
        with running_daemon(binary, backend='cpu') as d:
            mode = stat.S_IMODE(os.lstat(d.socket).st_mode)
            tap.check(mode == 0o600, 'started under umask 000 the socket is still 0600 (got %04o)' % mode)
            tap.check(os.path.exists(d.socket + '.lock'), 'the daemon holds PATH.lock next to its socket')
            d.stop()
            tap.check(not os.path.exists(d.socket + '.lock'), 'a clean stop removes the lock file with the socket')
    finally:
        os.umask(old)
    with running_daemon(binary, backend='cpu', extra=('--socket-mode', '0666')) as d:
        mode = stat.S_IMODE(os.lstat(d.socket).st_mode)
        tap.check(mode == 0o666, '--socket-mode 0666 gives a 0666 socket (got %04o)' % mode)
        d.stop()
    if os.geteuid() == 0:
        with running_daemon(binary, backend='cpu', extra=('--socket-mode', '0660', '--socket-group', str(NOBODY))) as d:
            st = os.lstat(d.socket)
            tap.check(stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == NOBODY,
                      '--socket-mode 0660 --socket-group %d: mode %04o, group %d' % (NOBODY, stat.S_IMODE(st.st_mode), st.st_gid))
            d.stop()
    else:
        skip(tap, '--socket-group gives the socket another group', 'not root')


def test_lock(tap, binary):
    d = tempfile.mkdtemp(prefix='vkr-lock-')
    sock = os.path.join(d, 's.sock')
    # a lock held by someone else: refused even though no socket file exists
    with open(sock + '.lock', 'w') as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = subprocess.run([binary, '--socket', sock, '--backend', 'cpu'], capture_output=True, text=True, timeout=60)
        tap.check(r.returncode == 1 and 'lock file' in r.stderr and sock + '.lock' in r.stderr and not os.path.exists(sock),
                  'a lock held elsewhere refuses the daemon, naming PATH.lock (exit %d: %s)' % (r.returncode, r.stderr.strip()[-160:]))
    os.unlink(sock + '.lock')

    # two daemons started at once on one path: exactly one serves, the other exits 1
    procs = [start_raw(binary, sock) for _ in range(2)]
    ready = []
    for p, r in procs:
        with os.fdopen(r, 'rb') as f:
            ready.append(f.readline() == b'ready\n')
    winners = [p for (p, _), ok in zip(procs, ready) if ok]
    losers = [p for (p, _), ok in zip(procs, ready) if not ok]
    loser_ok = len(losers) == 1 and losers[0].wait(timeout=60) == 1 and b'in use' in losers[0].stderr.read()
    tap.check(len(winners) == 1 and loser_ok, 'two daemons racing on one path: exactly one serves, the other exits 1 '
              '(ready %s)' % ready)
    if winners:
        with v.Client(sock, timeout=30) as c:
            tap.check(job_ok(c), 'the winner serves jobs')
        winners[0].terminate()
        tap.check(winners[0].wait(timeout=60) == 0 and not os.path.exists(sock) and not os.path.exists(sock + '.lock'),
                  'the winner stops with exit 0 and removes the socket and its lock file')
        for p in winners + losers:
            p.stdout.close()
            p.stderr.close()

    # a stale socket (nobody listening) and a stale, unlocked lock file are taken over
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(sock)
    stale.close()
    open(sock + '.lock', 'w').close()
    again = Daemon(binary, backend='cpu', socket_path=sock)
    with again.client() as c:
        tap.check(job_ok(c, 1), 'a stale socket and an unlocked lock file are taken over')
    again.stop()

    # a symlink where the lock file goes is refused, and not followed
    target = os.path.join(d, 'target')
    os.symlink(target, sock + '.lock')
    r = subprocess.run([binary, '--socket', sock, '--backend', 'cpu'], capture_output=True, text=True, timeout=60)
    tap.check(r.returncode == 1 and 'symbolic link' in r.stderr and not os.path.exists(target) and not os.path.exists(sock),
              'a symlink at PATH.lock is refused and not followed (exit %d)' % r.returncode)
    os.unlink(sock + '.lock')


def test_peer_credentials(tap, binary, cli):
    why = vkr_testlib.can_switch_uid()
    names = ['another uid is refused with VKR_E_PERMISSION naming it, request_id 0, then closed',
             'the same refusal reaches the Python client as VkresampleError(VKR_E_PERMISSION)',
             'and the C library: `vkresample ping` as that uid exits 1 with VKR_E_PERMISSION and the daemon\'s message',
             'the refusal is logged with the uid and counted (stats connections_refused)',
             'the daemon\'s own uid keeps being served meanwhile',
             '--allow-uid 65534 lets that uid ping and run a job',
             '--allow-group: a member by supplementary group is let in, a non-member refused',
             '--allow-group: a member by primary group is let in',
             'a daemon running as uid 65534 refuses root (root is not implicitly allowed)']
    if why:
        for n in names:
            skip(tap, n, why)
        return
    d = shared_dir()
    sock = os.path.join(d, 's.sock')
    with running_daemon(binary, backend='cpu', extra=('--socket-mode', '0666'), socket_path=sock) as dm:
        bystander = dm.client()
        raw = run_as(d, sock, 'raw')
        err = raw.get('error') or [0, '', '']
        tap.check(raw.get('type') == v.MSG_ERROR and raw.get('request_id') == 0 and err[0] == v.VKR_E_PERMISSION and
                  err[1] == 'uid' and 'uid %d' % NOBODY in err[2] and raw.get('end') in ('eof', 'reset'),
                  '%s (%s)' % (names[0], raw))
        py = run_as(d, sock, 'job')
        err = py.get('error') or [0, '', '']
        tap.check(err[0] == v.VKR_E_PERMISSION and '65534' in err[2] and 'ping' not in py, '%s (%s)' % (names[1], py))
        r = subprocess.run(['setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups', shared_cli(d, cli),
                            '--socket', sock, 'ping'], capture_output=True, text=True, timeout=60, env={'PATH': '/usr/bin:/bin'})
        tap.check(r.returncode == 1 and 'VKR_E_PERMISSION' in r.stderr and 'uid %d' % NOBODY in r.stderr,
                  '%s (exit %d: %s)' % (names[2], r.returncode, r.stderr.strip()[-200:]))
        st = bystander.stats()
        log = dm.log()
        tap.check(st['connections_refused'] == 3 and 'VKR_E_PERMISSION' in log and 'uid %d' % NOBODY in log,
                  '%s (connections_refused %d)' % (names[3], st['connections_refused']))
        tap.check(job_ok(bystander, 2) and st['clients'] == 1, names[4])
        bystander.close()
        dm.stop()
    with running_daemon(binary, backend='cpu', extra=('--socket-mode', '0666', '--allow-uid', str(NOBODY)), socket_path=sock) as dm:
        out = run_as(d, sock, 'job')
        tap.check(out.get('job_ok') is True and out.get('ping', {}).get('device') == 'cpu', '%s (%s)' % (names[5], out))
        dm.stop()
    with running_daemon(binary, backend='cpu', extra=('--socket-mode', '0666', '--allow-group', '4242,4343'), socket_path=sock) as dm:
        member = run_as(d, sock, 'job', groups=[4343])
        outsider = run_as(d, sock, 'job', groups=[4444])
        tap.check(member.get('job_ok') is True and (outsider.get('error') or [0])[0] == v.VKR_E_PERMISSION,
                  '%s (%s / %s)' % (names[6], member, outsider))
        primary = run_as(d, sock, 'job', gid=4242)
        tap.check(primary.get('job_ok') is True, '%s (%s)' % (names[7], primary))
        dm.stop()
    # the daemon itself as uid 65534 in a directory it owns; root's client must be refused
    own = tempfile.mkdtemp(prefix='vkr-nobody-')
    os.chmod(own, 0o755)
    os.chown(own, NOBODY, NOBODY)
    nsock = os.path.join(own, 's.sock')
    r, w = os.pipe()
    p = subprocess.Popen(['setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups', binary, '--socket', nsock,
                          '--backend', 'cpu', '--socket-mode', '0666', '--ready-fd', str(w)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(w,),
                         env={'PATH': '/usr/bin:/bin', 'HOME': own})
    os.close(w)
    with os.fdopen(r, 'rb') as f:
        up = f.readline() == b'ready\n'
    got = None
    if up:
        try:
            with v.Client(nsock, timeout=30) as c:
                c.ping()
                got = 'served'
        except v.VkresampleError as e:
            got = (e.code, e.field, e.message)
    p.terminate()
    status = p.wait(timeout=60)
    p.stderr.close()
    tap.check(up and got is not None and got[0] == v.VKR_E_PERMISSION and 'uid 0 ' in got[2] and status == 0,
              '%s (%s; exit %s)' % (names[8], got, status))


def test_per_uid_caps(tap, binary):
    why = vkr_testlib.can_switch_uid()
    d = shared_dir()
    sock = os.path.join(d, 's.sock')
    extra = ('--socket-mode', '0666', '--allow-uid', str(NOBODY), '--max-connections-per-uid', '3')
    with running_daemon(binary, backend='cpu', extra=extra, socket_path=sock) as dm:
        mine = [dm.client() for _ in range(3)]
        for c in mine:
            c.ping()
        extra_conn = dm.client()
        try:
            extra_conn.ping()
            got = 'served'
        except v.VkresampleError as e:
            got = (e.code, e.field, e.message)
        tap.check(got != 'served' and got[0] == v.VKR_E_BUSY and got[1] == 'connections' and '--max-connections-per-uid 3' in got[2],
                  'a 4th connection of one uid with --max-connections-per-uid 3 -> VKR_E_BUSY [connections] (%s)' % (got,))
        tap.check(all(job_ok(c, k) for k, c in enumerate(mine)), 'the uid\'s 3 connections keep working')
        if why:
            skip(tap, 'another uid still gets in while this uid is at its cap', why)
        else:
            out = run_as(d, sock, 'job')
            tap.check(out.get('job_ok') is True, 'another uid still gets in while this uid is at its cap (%s)' % out)
        mine.pop().close()
        for _ in range(100000):   # until the daemon has seen the close (other uid's client gone too)
            if mine[0].stats()['clients'] == 2:
                break
        again = dm.client()
        tap.check(job_ok(again, 9), 'once one closes, the uid may connect again')
        for c in mine + [again]:
            c.close()
        dm.stop()

    # bytes: a job whose reply is not read holds its bytes; the uid's next job does not fit
    big = np.random.default_rng(4).standard_normal((1, 1, 512, 512)).astype(np.float32)   # 1 MiB in, 4 MiB out
    with running_daemon(binary, backend='cpu', extra=('--max-bytes-per-uid', '8M')) as dm:
        holder = socket.socket(socket.AF_UNIX)
        holder.connect(dm.socket)
        body = v.pack_submit_body(big.shape, big.tobytes(), mode='nearest', scale_factor=2.0, backend='cpu')
        holder.sendall(v.pack_header(v.MSG_SUBMIT, 1, len(body)) + body)
        # inline bytes, which the daemon holds for the job (the default Client's pool would bring
        # its own memory in memfds, which --max-bytes-per-uid does not count)
        watch = v.Client(dm.socket, memfd_threshold=None)
        for _ in range(100000):   # until the job ran: its 5 MiB then wait for the holder to read its reply
            if any(r['op'] == 'interpolate' and r['done'] == 1 for r in watch.stats()['jobs']):
                break
        try:
            watch.interpolate(big, scale_factor=2.0, mode='nearest', backend='cpu')
            got = 'served'
        except v.VkresampleError as e:
            got = (e.code, e.field, e.message)
        tap.check(got != 'served' and got[0] == v.VKR_E_BUSY and '--max-bytes-per-uid' in got[2] and 'uid %d' % os.getuid() in got[2],
                  'a job that would take its uid over --max-bytes-per-uid 8M while another holds 5 MiB -> VKR_E_BUSY (%s)' % (got,))
        holder.close()   # its reply is dropped and its bytes released
        served = False
        for _ in range(1000):
            try:
                served = np.array_equal(watch.interpolate(big, scale_factor=2.0, mode='nearest', backend='cpu'), nearest_x2(big))
                break
            except v.VkresampleError as e:
                if e.code != v.VKR_E_BUSY:
                    break
        tap.check(served, 'once the holder is gone the same job runs, correct')
        try:
            watch.interpolate(big, scale_factor=4.0, mode='nearest', backend='cpu')
            got = 'served'
        except v.VkresampleError as e:
            got = (e.code, e.field, e.message)
        tap.check(got != 'served' and got[0] == v.VKR_E_TOO_LARGE and '--max-bytes-per-uid' in got[2],
                  'a job needing 17 MiB alone -> VKR_E_TOO_LARGE naming --max-bytes-per-uid (%s)' % (got,))
        tap.check(job_ok(watch, 5), 'the connection carries on after both refusals')
        watch.close()
        dm.stop()


def test_flags(tap, binary):
    r = subprocess.run([binary, '--help'], capture_output=True, text=True, timeout=60)
    flags = ('--socket-mode', '--socket-group', '--allow-uid', '--allow-group', '--max-connections ', '--max-connections-per-uid',
             '--max-bytes-per-uid', '--idle-timeout', '--frame-timeout')
    missing = [f for f in flags if f not in r.stdout]
    tap.check(r.returncode == 0 and not missing, '--help names every flag of who-may-connect, caps and timeouts (missing %s)' % missing)
    bad = [('--socket-mode', '0400'), ('--socket-mode', '01777'), ('--socket-mode', 'rw'), ('--socket-group', 'no-such-group-vkr'),
           ('--allow-uid', 'no-such-user-vkr'), ('--allow-uid', ''), ('--allow-group', '1,,2'), ('--max-connections', '0'),
           ('--max-connections-per-uid', '-1'), ('--max-bytes-per-uid', '0'), ('--idle-timeout', '-1'),
           ('--frame-timeout', 'soon'), ('--idle-timeout', 'nan')]
    wrong = []
    for flag, value in bad:
        r = subprocess.run([binary, flag, value, '--socket', '/nonexistent/x.sock'], capture_output=True, text=True, timeout=60)
        if r.returncode != 2 or flag not in r.stderr:
            wrong.append((flag, value, r.returncode, r.stderr.strip()[-100:]))
    tap.check(not wrong, 'every malformed value of the new flags is a usage error naming the flag (exit 2): %s' % wrong)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('cli')
    args = ap.parse_args()
    tap = Tap()
    test_flags(tap, args.daemon)
    test_socket_file(tap, args.daemon)
    test_lock(tap, args.daemon)
    test_peer_credentials(tap, args.daemon, args.cli)
    test_per_uid_caps(tap, args.daemon)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/python3
"""meson install, end to end: install the build into a scratch DESTDIR and check that the daemon,
the CLI, both headers, the library, vkresample.pc and the systemd units are there; compile a
program against the installed header and library with `pkg-config --cflags --libs vkresample`
alone, run it against the installed daemon, and check the units with systemd-analyze.

usage: test_install.py MESON BUILD_DIR [B_SANITIZE]     (TAP output)
B_SANITIZE: the build's b_sanitize option; the test program is built with the same sanitizers
(an instrumented library needs an instrumented program)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import Tap  # noqa: E402

PROGRAM = r'''
#include <stdio.h>
#include <vkresample.h>

int main(int argc, char **argv)
{
    float data[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    vkr_tensor_t in = {4, {1, 2, 2, 2}, data, NULL}, out;
    vkr_interpolate_args_t args = {.mode = VKR_MODE_NEAREST, .n_size = 1, .size = {4}};
    vkr_client_t *c;
    int rc = vkr_connect(argc > 1 ? argv[1] : NULL, &c);

    if (rc == VKR_OK)
        rc = vkr_interpolate(c, &args, &in, &out);
    if (rc != VKR_OK) {
        fprintf(stderr, "%s: %s\n", vkr_code_name(rc), c ? vkr_last_error(c) : "");
        return 1;
    }
    printf("%d %lld %g\n", out.rank, (long long)out.shape[3], out.data[31]);
    vkr_tensor_free(&out);
    vkr_close(c);
    return 0;
}
'''


def one_line_of(text):
    return ' | '.join(text.strip().splitlines())


def introspect_prefix(meson, build):
    r = subprocess.run([meson, 'introspect', '--buildoptions', build], capture_output=True, text=True, timeout=120)
    opts = {o['name']: o['value'] for o in json.loads(r.stdout)}
    return opts['prefix'], opts['bindir'], opts['libdir'], opts['includedir']


def find(root, name):
    for dirpath, _, files in os.walk(root):
        if name in files:
            return os.path.join(dirpath, name)
    return None


def main():
    meson, build = sys.argv[1], os.path.abspath(sys.argv[2])
    sanitize = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] not in ('', 'none') else None
    tap = Tap()
    dest = tempfile.mkdtemp(prefix='vkr-install-')
    try:
        r = subprocess.run([meson, 'install', '-C', build, '--no-rebuild', '--destdir', dest], capture_output=True, text=True,
                           timeout=300)
        tap.check(r.returncode == 0, 'meson install --destdir succeeds (exit %d: %s)' % (r.returncode, one_line_of(r.stderr)))
        prefix, bindir, libdir, includedir = introspect_prefix(meson, build)
        root = dest + prefix
        expected = {'daemon': os.path.join(root, bindir, 'vkresampled'), 'CLI': os.path.join(root, bindir, 'vkresample'),
                    'header': os.path.join(root, includedir, 'vkresample.h'),
                    'types header': os.path.join(root, includedir, 'vkresample_types.h'),
                    'library': os.path.join(root, libdir, 'libvkresample.so'),
                    'pkg-config file': os.path.join(root, libdir, 'pkgconfig', 'vkresample.pc')}
        for what, path in expected.items():
            tap.check(os.path.exists(path), 'installed: the %s at %s' % (what, path[len(dest):]))
        service, sock = find(dest, 'vkresampled.service'), find(dest, 'vkresampled.socket')
        tap.check(service is not None and sock is not None, 'installed: the systemd units (%s)' % (service and service[len(dest):]))
        with open(service or os.devnull) as f:
            unit = f.read()
        tap.check(('ExecStart=%s' % os.path.join(prefix, bindir, 'vkresampled')) in unit,
                  'the service runs the installed daemon (%s)' % one_line_of(unit.split('ExecStart=')[-1].split('\n')[0]))

        # a program built from the installed files with pkg-config's flags only
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(expected['pkg-config file']), PKG_CONFIG_SYSROOT_DIR=dest)
        r = subprocess.run(['pkg-config', '--cflags', '--libs', 'vkresample'], capture_output=True, text=True, env=env, timeout=60)
        flags = r.stdout.split()
        tap.check(r.returncode == 0 and any(f.startswith('-I' + dest) for f in flags) and '-lvkresample' in flags,
                  'pkg-config --cflags --libs vkresample: %s' % r.stdout.strip())
        src, exe = os.path.join(dest, 'prog.c'), os.path.join(dest, 'prog')
        with open(src, 'w') as f:
            f.write(PROGRAM)
        san = ['-fsanitize=' + sanitize] if sanitize else []
        r = subprocess.run(['cc', '-std=c11', '-Wall', '-Werror', *san, src, '-o', exe, *flags], capture_output=True, text=True,
                           timeout=120)
        tap.check(r.returncode == 0, 'a client program compiles and links against the installed files (%s)' % one_line_of(r.stderr))
        sock_path = os.path.join(dest, 'd.sock')
        ready_r, ready_w = os.pipe()
        daemon = subprocess.Popen([expected['daemon'], '--socket', sock_path, '--backend', 'cpu', '--ready-fd', str(ready_w), '-q'],
                                  pass_fds=(ready_w,), stdin=subprocess.DEVNULL)
        try:
            os.close(ready_w)
            with os.fdopen(ready_r, 'rb') as f:
                ready = f.readline() == b'ready\n'
            r = subprocess.run([exe if os.path.exists(exe) else 'false', sock_path], capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(expected['library'])))
            tap.check(ready and r.returncode == 0 and r.stdout.split() == ['4', '4', '7'],
                      'it runs a job on the installed daemon (%s %s)' % (r.stdout.strip(), one_line_of(r.stderr)))
            daemon.send_signal(signal.SIGTERM)
            tap.check(daemon.wait(timeout=60) == 0, 'the installed daemon stops cleanly')
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()

        analyze = shutil.which('systemd-analyze')
        if analyze and service and sock:
            # verify a copy whose ExecStart points into DESTDIR (the real path exists only once installed)
            check = os.path.join(dest, 'verify')
            os.mkdir(check)
            shutil.copy(sock, check)
            with open(os.path.join(check, 'vkresampled.service'), 'w') as f:
                f.write(unit.replace(os.path.join(prefix, bindir, 'vkresampled'), expected['daemon']))
            r = subprocess.run([analyze, 'verify', os.path.join(check, 'vkresampled.socket'), os.path.join(check, 'vkresampled.service')],
                               capture_output=True, text=True, timeout=60)
            tap.check(r.returncode == 0, 'systemd-analyze verify accepts both units (%s)' % one_line_of(r.stderr + r.stdout))
        else:
            print('# systemd-analyze not found: the units are not verified')
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())

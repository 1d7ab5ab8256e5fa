#!/usr/bin/python3
"""A small job behind another uid's flood (issue 11, "workers and the device"): uid 65534 (run
by setpriv, let in with --allow-uid) floods the daemon with large jobs, several connections each
keeping several in flight, while the daemon's own uid sends small jobs one at a time.  The small
jobs' median latency must stay within twice the flood's longest single job: a uid may not hold
every worker while another uid has work (queue.c), nor queue all its submissions on the Vulkan
device ahead of another uid's (backend_vulkan.c's device gate).

The longest single job is the flood's job run alone on the same daemon in the same run (idle,
before the flood starts and after it stops; the slowest of those runs), so the bound follows the
machine's speed of the moment: no absolute timing.  Every small job's answer is checked (nearest
x2 is exact), and the flood must have had every job answered with a RESULT.

The second uid needs root and setpriv(1); without them the checks are TAP SKIPs.

usage: test_flood.py DAEMON --backend cpu|vulkan [--samples N]     (TAP output)"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

os.environ['ATEN_CPU_CAPABILITY'] = 'default'   # the contract: torch's portable kernels
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import Tap, check_stopped, running_daemon, vkresample as v  # noqa: E402
import vkr_testlib  # noqa: E402

NOBODY = 65534
FLOOD_CONNECTIONS = 12   # the flooding uid's connections ...
FLOOD_WINDOW = 2         # ... each with this many large jobs in flight
SOLO_RUNS = 5            # the flood's job alone, before the flood and again after it
BOUND = 2.0              # small job p50 <= BOUND x the flood's longest single job

# The flood, run as uid 65534 from a copy of the Python module in a shared directory: K
# connections, each keeping W copies of one large job in flight (output in a daemon memfd, so
# the flood does not spend the cores copying replies), until its stdin closes; then it drains
# and prints a JSON summary.  Prints 'flooding' once every connection has had a reply.
FLOOD_CLIENT = r'''
import hashlib, json, os, sys, threading
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vkresample as v
path, k, w, digest = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'job.bin'), 'rb') as f:
    body = f.read()
stop = threading.Event()
started = threading.Semaphore(0)
results = []
def check(f):
    # a RESULT whose output (in the daemon's memfd) is byte for byte the job's answer alone
    if f.type != v.MSG_RESULT:
        return list(v.unpack_error(f.body)) if f.type == v.MSG_ERROR else f.type
    res = v.unpack_result(f.body)
    if len(f.fds) != 1:
        return 'RESULT with %d descriptors' % len(f.fds)
    data = os.pread(f.fds[0], res['data_bytes'], res['data_offset'])
    return None if hashlib.sha256(data).hexdigest() == digest else 'output differs from the job run alone'
def flood():
    done, bad, rid = 0, [], 0
    try:
        c = v.Client(path, timeout=300)
        in_flight = 0
        while in_flight < w:
            rid += 1
            c.send_raw(v.pack_header(v.MSG_SUBMIT, rid, len(body)) + body)
            in_flight += 1
        first = True
        while in_flight:
            f = c.recv_frame(max_body=1 << 20)
            in_flight -= 1
            why = check(f)
            for fd in f.fds:
                os.close(fd)
            if why is None:
                done += 1
            else:
                bad.append(why)
            if first:
                started.release()
                first = False
            if not stop.is_set():
                rid += 1
                c.send_raw(v.pack_header(v.MSG_SUBMIT, rid, len(body)) + body)
                in_flight += 1
        c.close()
    except Exception as e:
        bad.append(repr(e))
        started.release()
    results.append((done, bad))
threads = [threading.Thread(target=flood) for _ in range(k)]
for t in threads:
    t.start()
for _ in range(k):
    started.acquire()
print('flooding', flush=True)
sys.stdin.read()
stop.set()
for t in threads:
    t.join()
print(json.dumps({'uid': os.getuid(), 'done': sum(r[0] for r in results), 'bad': [b for r in results for b in r[1]][:5]}))
'''


def skip(tap, what, why):
    tap.n += 1
    print('ok %d - %s # SKIP %s' % (tap.n, what, why), flush=True)



def shared_dir():
    """A 0755 directory another uid can traverse, with the client module and flood.py."""
    return vkr_testlib.shared_dir('vkr-flood-', {'flood.py': FLOOD_CLIENT})


class FloodJob:
    """The flood's large job: bilinear 1x16x64x64 -> 384x384 (antialias: two passes, so two
    submissions on Vulkan, where the gate may interleave another uid's job between them), output
    into a daemon memfd so that the flood does not spend the cores copying replies."""

    def __init__(self, backend, antialias):
        self.x = np.random.default_rng(7).standard_normal((1, 16, 64, 64)).astype(np.float32)
        self.antialias = antialias
        self.name = 'bilinear%s 1x16x64x64 -> 384x384' % (' antialias' if antialias else '')
        self.body = v.pack_submit_body(self.x.shape, self.x.tobytes(), mode='bilinear', size=[384, 384], align_corners=False,
                                       antialias=antialias, backend=backend, result_storage=v.RESULT_DAEMON_FD)

    def torch_answer(self):
        return F.interpolate(torch.from_numpy(self.x), size=(384, 384), mode='bilinear', align_corners=False,
                             antialias=self.antialias).numpy()


def timed(c, rid, body):
    """One job's round trip in ms, its reply frame, and the output bytes of a memfd RESULT
    (descriptors closed)."""
    t0 = time.perf_counter()
    c.send_raw(v.pack_header(v.MSG_SUBMIT, rid, len(body)) + body)
    f = c.recv_frame(max_body=1 << 24)
    ms = (time.perf_counter() - t0) * 1e3
    data = None
    if f.type == v.MSG_RESULT and len(f.fds) == 1:
        res = v.unpack_result(f.body)
        data = os.pread(f.fds[0], res['data_bytes'], res['data_offset'])
    for fd in f.fds:
        os.close(fd)
    return ms, f, data


def solo_runs(c, job, n, digests):
    """The flood's job alone on the idle daemon, n times: the round trips in ms; each output's
    sha256 added to digests."""
    times = []
    for k in range(n):
        ms, f, data = timed(c, 1000 + k, job.body)
        if data is None:
            raise AssertionError('the flood job alone failed: %s' % (v.unpack_error(f.body) if f.type == v.MSG_ERROR else f.type,))
        times.append(ms)
        digests.add(hashlib.sha256(data).hexdigest())
    return times


def small_jobs(c, backend, samples):
    """The other uid's small jobs (nearest x2 of 1x3x16x16), one at a time: their round trips in
    ms and the ones answered wrong."""
    rng = np.random.default_rng(11)
    lat, wrong = [], []
    for k in range(samples):
        x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
        body = v.pack_submit_body(x.shape, x.tobytes(), mode='nearest', scale_factor=2.0, backend=backend)
        ms, f, _ = timed(c, k + 1, body)
        lat.append(ms)
        if f.type != v.MSG_RESULT:
            wrong.append((k, v.unpack_error(f.body) if f.type == v.MSG_ERROR else f.type))
            continue
        res = v.unpack_result(f.body)
        got = np.frombuffer(f.body, '<f4', offset=v.RESULT_FIXED_BYTES).reshape(res['shape'])
        if not np.array_equal(got, np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)):
            wrong.append((k, 'wrong result'))
    return lat, wrong


def test_flood(tap, binary, backend, antialias, samples):
    job = FloodJob(backend, antialias)
    what = '%s backend, flood of %s' % (backend, job.name)
    names = ['%s: the job alone equals torch, the same every time' % what,
             '%s: the flooding uid\'s jobs all answered, each equal to the job alone' % what,
             '%s: every small job of the other uid answered right (nearest x2)' % what,
             '%s: small job p50 <= %.0fx the flood\'s longest single job' % (what, BOUND)]
    why = vkr_testlib.can_switch_uid()
    if why:
        for n in names:
            skip(tap, n, why)
        return
    d = shared_dir()
    sock = os.path.join(d, 's.sock')
    with open(os.path.join(d, 'job.bin'), 'wb') as f:
        f.write(job.body)
    os.chmod(os.path.join(d, 'job.bin'), 0o644)
    extra = ('--socket-mode', '0666', '--allow-uid', str(NOBODY))
    try:
        with running_daemon(binary, backend=backend, extra=extra, socket_path=sock) as dm:
            c = dm.client()
            digests = set()
            solo_runs(c, job, 2, digests)                    # warm-up: buffers, pools, OpenMP teams
            ms, f, first = timed(c, 999, job.body)
            ref = job.torch_answer()
            alone_ok = first is not None and first == np.ascontiguousarray(ref, dtype='<f4').tobytes()
            digests.add(hashlib.sha256(first or b'').hexdigest())
            solo = solo_runs(c, job, SOLO_RUNS, digests)
            digest = hashlib.sha256(first or b'').hexdigest()
            env = {'PATH': '/usr/bin:/bin', 'HOME': d, 'PYTHONDONTWRITEBYTECODE': '1'}
            flood = subprocess.Popen(['setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups', '/usr/bin/python3',
                                      '-s', os.path.join(d, 'flood.py'), sock, str(FLOOD_CONNECTIONS), str(FLOOD_WINDOW), digest],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     cwd=d)
            line = flood.stdout.readline()
            lat, wrong = small_jobs(c, backend, samples) if line.strip() == 'flooding' else ([], [])
            out, err = flood.communicate(timeout=300)
            try:
                summary = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                summary = {'done': 0, 'bad': ['flood client: exit %s, %r %s' % (flood.returncode, line, err[-500:])]}
            solo += solo_runs(c, job, SOLO_RUNS, digests)
            c.close()
            tap.check(alone_ok and len(digests) == 1, '%s (equal to torch: %s; %d distinct outputs in %d runs)'
                      % (names[0], alone_ok, len(digests), 3 + 2 * SOLO_RUNS))
            tap.check(summary.get('uid') == NOBODY and summary['done'] > 0 and not summary['bad'],
                      '%s (uid %s, %d jobs, problems %s)' % (names[1], summary.get('uid'), summary['done'], summary['bad']))
            tap.check(len(lat) == samples and not wrong, '%s (%d of %d; %s)' % (names[2], len(lat) - len(wrong), samples, wrong[:3]))
            longest = max(solo)
            p50 = float(np.median(lat)) if lat else float('inf')
            print('# %s: small job p50 %.2f ms, p90 %.2f ms, max %.2f ms (%d samples) behind %d connections x %d jobs of uid %d '
                  '(%d done meanwhile); the job alone: %s ms, longest %.2f ms'
                  % (what, p50, float(np.percentile(lat, 90)) if lat else 0.0, max(lat) if lat else 0.0, len(lat), FLOOD_CONNECTIONS,
                     FLOOD_WINDOW, NOBODY, summary['done'], ' '.join('%.1f' % t for t in solo), longest), flush=True)
            tap.check(p50 <= BOUND * longest, '%s: p50 %.2f ms, longest single job %.2f ms (ratio %.2f)'
                      % (names[3], p50, longest, p50 / longest))
            check_stopped(tap, dm, '%s: daemon stopped cleanly' % what)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    ap.add_argument('--backend', choices=('cpu', 'vulkan'), default='cpu')
    ap.add_argument('--samples', type=int, default=41)
    args = ap.parse_args()
    tap = Tap()
    test_flood(tap, args.daemon, args.backend, False, args.samples)
    if args.backend == 'vulkan':   # jobs of two submissions: another uid's job goes between them
        test_flood(tap, args.daemon, args.backend, True, args.samples)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())

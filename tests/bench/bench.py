#!/usr/bin/python3
"""vkresample benchmark: the fixed workloads of issue 6, each timed in one run against its peers.

For every workload it prints the median of several timed runs of
  cpu        our CPU backend in-process (vkr-bench-backend)
  daemon     the same job through a running vkresampled over its socket (Python module, every
             tensor inline: Client(memfd_threshold=None))
  memfd      the same from memfd tensors made once, output into a memfd tensor given as out=
  default    the same from a Client(sock) with no options, numpy in, numpy out (what a new user
             writes: tensors of 1 MiB or more through the connection's memfd pool)
  vulkan     the Vulkan backend in-process (lavapipe here, a GPU where there is one)
  torch      PyTorch CPU (torch.nn.functional), same thread count
  opencv     cv2.resize / cv2.remap on the same data in HWC, same thread count (where it has the op)
  floor      the memory-bandwidth floor: bytes read + written / copy bandwidth measured in this run
and the ratios ours / peer (below 1 means we are faster).  The small-job workload (1x3x32x32 ->
64x64 bilinear, issue 6's target p50 <= 50 us, p99 <= 200 us) reports the round-trip latency p50 /
p99 through the daemon and jobs/s with 8 concurrent clients, twice: through the Python module
(client/python/vkresample.py) and through libvkresample (vkr-bench-small-jobs, which also times a
PING round trip: the socket and the daemon's loop alone, no worker thread, no compute).

usage: bench.py [--build DIR] [--quick] [--json] [--only NAME[,NAME]]"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# The peer is torch with its own best kernels (AVX2 here), as a user would call it; set
# ATEN_CPU_CAPABILITY yourself to time another of its builds.
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'client', 'python'))
import vkresample  # noqa: E402

try:
    import cv2  # noqa: E402
except ImportError:  # python3-opencv is optional
    cv2 = None

# name, backend-tool arguments, torch call, opencv call (or None), input shape
WORKLOADS = [
    ('bilinear x2 8x3x512x512', ['mode=bilinear', 'shape=8,3,512,512', 'scale=2', 'ac=0'],
     lambda x: F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False),
     ('resize', (1024, 1024), 'INTER_LINEAR'), (8, 3, 512, 512)),
    ('nearest x2 8x3x512x512', ['mode=nearest', 'shape=8,3,512,512', 'scale=2'],
     lambda x: F.interpolate(x, scale_factor=2, mode='nearest'),
     ('resize', (1024, 1024), 'INTER_NEAREST'), (8, 3, 512, 512)),
    ('bicubic x2 8x3x512x512', ['mode=bicubic', 'shape=8,3,512,512', 'scale=2', 'ac=0'],
     lambda x: F.interpolate(x, scale_factor=2, mode='bicubic', align_corners=False),
     ('resize', (1024, 1024), 'INTER_CUBIC'), (8, 3, 512, 512)),
    ('area /4 1x3x1080x1920', ['mode=area', 'shape=1,3,1080,1920', 'size=270,480'],
     lambda x: F.interpolate(x, size=(270, 480), mode='area'),
     ('resize', (480, 270), 'INTER_AREA'), (1, 3, 1080, 1920)),
    ('bilinear aa 1080p->224', ['mode=bilinear', 'shape=1,3,1080,1920', 'size=224,224', 'aa=1', 'ac=0'],
     lambda x: F.interpolate(x, size=(224, 224), mode='bilinear', antialias=True, align_corners=False),
     None, (1, 3, 1080, 1920)),
    ('trilinear x2 1x4x64^3', ['mode=trilinear', 'shape=1,4,64,64,64', 'scale=2', 'ac=0'],
     lambda x: F.interpolate(x, scale_factor=2, mode='trilinear', align_corners=False),
     None, (1, 4, 64, 64, 64)),
    ('grid_sample bilinear 4x32x256^2', ['op=grid_sample', 'mode=bilinear', 'padding=zeros', 'shape=4,32,256,256', 'grid=4,256,256'],
     'grid:bilinear:zeros', ('remap', None, 'INTER_LINEAR'), (4, 32, 256, 256)),
    ('grid_sample bicubic refl 4x32x256^2', ['op=grid_sample', 'mode=bicubic', 'padding=reflection', 'shape=4,32,256,256', 'grid=4,256,256'],
     'grid:bicubic:reflection', ('remap', None, 'INTER_CUBIC'), (4, 32, 256, 256)),
]


def median_time(fn, runs, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_bandwidth():
    """Bytes per second of a large memcpy (read + write counted), the floor's yardstick."""
    a = np.ones(64 * 1024 * 1024 // 4, np.float32)
    b = np.empty_like(a)
    t = median_time(lambda: np.copyto(b, a), 7)
    return 2 * a.nbytes / t


def machine():
    cpu = 'unknown'
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30
    return {'date': datetime.datetime.now().isoformat(timespec='seconds'), 'cpu': cpu, 'cores': os.cpu_count(),
            'memory_gib': round(mem, 1), 'kernel': platform.release(), 'torch': torch.__version__,
            'torch_threads': torch.get_num_threads(), 'torch_capability': os.environ.get('ATEN_CPU_CAPABILITY', 'native'),
            'opencv': cv2.__version__ if cv2 else None}


def backend_tool(build, backend, args, iters):
    tool = os.path.join(build, 'tests', 'bench', 'vkr-bench-backend')
    r = subprocess.run([tool, '--backend', backend, '--iters', str(iters), '--warmup', '1', *args],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return json.loads(r.stdout), None


def torch_peer(call, shape, runs, rng):
    x = torch.from_numpy(rng.uniform(-1, 1, shape).astype(np.float32))
    if isinstance(call, str):
        _, mode, pad = call.split(':')
        grid = torch.from_numpy(rng.uniform(-1.1, 1.1, (shape[0], shape[2], shape[3], 2)).astype(np.float32))
        return median_time(lambda: F.grid_sample(x, grid, mode=mode, padding_mode=pad, align_corners=False), runs)
    return median_time(lambda: call(x), runs)


def opencv_peer(spec, shape, runs, rng):
    """cv2 on the same data in HWC (channels last, one image at a time, as OpenCV works)."""
    if cv2 is None or spec is None:
        return None
    kind, dsize, interp = spec
    n, c, h, w = shape
    if c > 4 and kind == 'resize':
        return None
    imgs = [np.ascontiguousarray(rng.uniform(-1, 1, (h, w, c)).astype(np.float32)) for _ in range(n)]
    flag = getattr(cv2, interp)
    if kind == 'resize':
        return median_time(lambda: [cv2.resize(im, dsize, interpolation=flag) for im in imgs], runs)
    mapx = ((rng.uniform(-1.1, 1.1, (h, w)) + 1) * w / 2 - 0.5).astype(np.float32)
    mapy = ((rng.uniform(-1.1, 1.1, (h, w)) + 1) * h / 2 - 0.5).astype(np.float32)
    border = cv2.BORDER_REFLECT_101 if interp == 'INTER_CUBIC' else cv2.BORDER_CONSTANT
    # remap takes at most 4 channels: split 32 channels into groups of 4
    groups = [[np.ascontiguousarray(im[:, :, k:k + 4]) for k in range(0, c, 4)] for im in imgs]
    return median_time(lambda: [cv2.remap(g, mapx, mapy, flag, borderMode=border) for im in groups for g in im], runs)


class Daemon:
    def __init__(self, build, backend):
        self.dir = tempfile.mkdtemp(prefix='vkr-bench-')
        self.socket = os.path.join(self.dir, 's')
        r, w = os.pipe()
        self.proc = subprocess.Popen([os.path.join(build, 'daemon', 'vkresampled'), '--socket', self.socket, '--backend', backend,
                                      '--ready-fd', str(w), '-q'], pass_fds=(w,), stderr=subprocess.DEVNULL)
        os.close(w)
        with os.fdopen(r, 'rb') as f:
            if f.readline() != b'ready\n':
                raise RuntimeError('vkresampled did not start')

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def daemon_times(client, default_client, op, args_kw, tensors, runs):
    """The job through the daemon (cpu backend), three times: inline bytes both ways (client:
    memfd_threshold=None), zero-copy (inputs in memfd tensors made once, the output written into
    a memfd tensor given as out=; what a caller that reuses its buffers pays), and the default
    client's way (default_client: Client(sock), numpy arrays in and out, each result kept until
    the next one is made, as `y = c.interpolate(x)` in a loop does).  Returns (inline_s, memfd_s,
    default_s)."""
    call = getattr(client, op)
    inline = median_time(lambda: call(*tensors, backend='cpu', **args_kw), runs)
    dcall = getattr(default_client, op)
    last = [None]

    def default_job():
        last[0] = dcall(*tensors, backend='cpu', **args_kw)
    default = median_time(default_job, runs)
    last[0] = None
    shape = call(*tensors, backend='cpu', **args_kw).shape
    ins = [client.memfd_tensor(t.shape, t) for t in tensors]
    out = client.memfd_tensor(shape)
    try:
        memfd = median_time(lambda: call(*ins, backend='cpu', out=out, **args_kw), runs)
    finally:
        for t in ins + [out]:
            t.close()
    return inline, memfd, default


def small_job_latency(sock, seconds):
    """p50 / p99 of a 1x3x32x32 -> 64x64 bilinear round trip through the Python module, and
    jobs/s with 8 clients (threads, one connection each)."""
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    with vkresample.Client(sock) as c:
        for _ in range(50):
            c.interpolate(x, size=(64, 64), mode='bilinear', align_corners=False, backend='cpu')
        lat = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            c.interpolate(x, size=(64, 64), mode='bilinear', align_corners=False, backend='cpu')
            lat.append(time.perf_counter() - t0)
    lat.sort()
    counts = [0] * 8
    stop = time.perf_counter() + seconds

    def worker(k):
        with vkresample.Client(sock) as c:
            while time.perf_counter() < stop:
                c.interpolate(x, size=(64, 64), mode='bilinear', align_corners=False, backend='cpu')
                counts[k] += 1
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], sum(counts) / seconds


def small_job_c(build, sock, seconds):
    """The same small job through libvkresample (vkr-bench-small-jobs): {'p50_us', 'p90_us',
    'p99_us', 'min_us', 'ping_p50_us', 'ping_p99_us', 'jobs_per_s', ...}, or {'error': ...}."""
    tool = os.path.join(build, 'tests', 'bench', 'vkr-bench-small-jobs')
    try:
        r = subprocess.run([tool, sock, '--seconds', str(seconds), '--clients', '8', '--backend', 'cpu'],
                           capture_output=True, text=True, timeout=120 + 4 * seconds)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {'error': str(e)}
    if r.returncode != 0:
        return {'error': r.stderr.strip() or 'exit %d' % r.returncode}
    return json.loads(r.stdout)


def fmt_ms(v):
    return '%9.2f' % (v * 1e3) if v else '        -'


def fmt_ratio(a, b):
    return '%6.2f' % (a / b) if a and b else '     -'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default=os.path.join(HERE, '..', '..', 'build'))
    ap.add_argument('--quick', action='store_true', help='fewer runs (meson test --benchmark)')
    ap.add_argument('--json', action='store_true', help='print one JSON document instead of the table')
    ap.add_argument('--only', help='comma-separated workload name prefixes')
    args = ap.parse_args()
    runs = 3 if args.quick else 7
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    if cv2 is not None:
        cv2.setNumThreads(threads)
    rng = np.random.default_rng(0)
    info = machine()
    info['threads'] = threads
    info['copy_bandwidth_gbs'] = round(copy_bandwidth() / 1e9, 2)
    bw = info['copy_bandwidth_gbs'] * 1e9
    rows = []
    daemon = Daemon(args.build, 'cpu')
    try:
        client = vkresample.Client(daemon.socket, memfd_threshold=None)
        default_client = vkresample.Client(daemon.socket)
        for name, targs, tcall, cvspec, shape in WORKLOADS:
            if args.only and not any(name.startswith(p) for p in args.only.split(',')):
                continue
            cpu, err = backend_tool(args.build, 'cpu', targs, runs)
            vk, _ = backend_tool(args.build, 'vulkan', targs, max(2, runs // 2))
            row = {'workload': name, 'cpu_s': cpu and cpu['median_s'], 'vulkan_s': vk and vk['median_s'], 'error': err}
            row['torch_s'] = torch_peer(tcall, shape, runs, rng)
            row['opencv_s'] = opencv_peer(cvspec, shape, runs, rng)
            if cpu:
                row['floor_s'] = (cpu['in_bytes'] + cpu['out_bytes']) / bw
            if isinstance(tcall, str):
                _, mode, pad = tcall.split(':')
                x = rng.uniform(-1, 1, shape).astype(np.float32)
                grid = rng.uniform(-1.1, 1.1, (shape[0], shape[2], shape[3], 2)).astype(np.float32)
                row['daemon_inline_s'], row['daemon_memfd_s'], row['default_s'] = daemon_times(
                    client, default_client, 'grid_sample', {'mode': mode, 'padding_mode': pad, 'align_corners': False}, [x, grid], runs)
            else:
                kw = {}
                for a in targs:
                    k, _, v = a.partition('=')
                    if k == 'mode':
                        kw['mode'] = v
                    elif k == 'scale':
                        kw['scale_factor'] = float(v)
                    elif k == 'size':
                        kw['size'] = [int(s) for s in v.split(',')]
                    elif k == 'ac':
                        kw['align_corners'] = bool(int(v))
                    elif k == 'aa':
                        kw['antialias'] = bool(int(v))
                x = rng.uniform(-1, 1, shape).astype(np.float32)
                row['daemon_inline_s'], row['daemon_memfd_s'], row['default_s'] = daemon_times(
                    client, default_client, 'interpolate', kw, [x], runs)
            rows.append(row)
        client.close()
        default_client.close()
        p50, p99, jps = small_job_latency(daemon.socket, 1.0 if args.quick else 3.0)
        c_small = small_job_c(args.build, daemon.socket, 1.0 if args.quick else 3.0)
    finally:
        daemon.stop()
    # p50_us / p99_us / jobs_per_s_8_clients: the Python module's (as before); c_library: libvkresample's
    small = {'p50_us': round(p50 * 1e6, 1), 'p99_us': round(p99 * 1e6, 1), 'jobs_per_s_8_clients': round(jps),
             'c_library': c_small}
    if args.json:
        print(json.dumps({'machine': info, 'workloads': rows, 'small_job': small}, indent=1))
        return 0
    print('# vkresample benchmark, %s' % info['date'])
    print('# %s, %d cores, %.1f GiB, kernel %s; torch %s (%s, %d threads); opencv %s; copy bandwidth %.2f GB/s' % (
        info['cpu'], info['cores'], info['memory_gib'], info['kernel'], info['torch'], info['torch_capability'], threads,
        info['opencv'], info['copy_bandwidth_gbs']))
    print('# times in ms (median of %d); ratios are ours / peer (< 1: we are faster)' % runs)
    print('# daemon: the job through vkresampled (cpu backend) from the Python module, inline bytes; memfd: from memfd')
    print('# tensors with out= (zero-copy); default: Client(sock) with no options, numpy in and out (the memfd pool);')
    print('# dm/c: memfd through the daemon / in-process (target <= 1.15 for jobs >= 8 MiB); df/tch: default / torch')
    print('%-36s %9s %9s %9s %9s %9s %9s %9s %9s | %6s %6s %6s %6s %6s' % (
        'workload', 'cpu', 'daemon', 'memfd', 'default', 'vulkan', 'torch', 'opencv', 'floor', 'c/tch', 'c/cv', 'c/flr', 'dm/c',
        'df/tch'))
    for r in rows:
        print('%-36s %s %s %s %s %s %s %s %s | %s %s %s %s %s' % (
            r['workload'], fmt_ms(r['cpu_s']), fmt_ms(r.get('daemon_inline_s')), fmt_ms(r.get('daemon_memfd_s')),
            fmt_ms(r.get('default_s')), fmt_ms(r['vulkan_s']),
            fmt_ms(r['torch_s']), fmt_ms(r['opencv_s']), fmt_ms(r.get('floor_s')), fmt_ratio(r['cpu_s'], r['torch_s']),
            fmt_ratio(r['cpu_s'], r['opencv_s']), fmt_ratio(r['cpu_s'], r.get('floor_s')),
            fmt_ratio(r.get('daemon_memfd_s'), r['cpu_s']), fmt_ratio(r.get('default_s'), r['torch_s'])))
        if r['error']:
            print('#   %s: %s' % (r['workload'], r['error']))
    print('# small job 1x3x32x32 -> 64x64 bilinear through the daemon (cpu backend; target p50 <= 50 us, p99 <= 200 us):')
    print('#   Python module: p50 %.1f us, p99 %.1f us, %d jobs/s with 8 clients' % (
        small['p50_us'], small['p99_us'], small['jobs_per_s_8_clients']))
    if 'error' in c_small:
        print('#   libvkresample: not measured (%s)' % c_small['error'])
    else:
        print('#   libvkresample: p50 %.1f us, p99 %.1f us, %d jobs/s with 8 clients; PING round trip p50 %.1f us, p99 %.1f us' % (
            c_small['p50_us'], c_small['p99_us'], c_small['jobs_per_s'], c_small['ping_p50_us'], c_small['ping_p99_us']))
    return 0


if __name__ == '__main__':
    sys.exit(main())

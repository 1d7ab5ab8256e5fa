#!/usr/bin/python3
"""The Vulkan backend's pipeline cache under --cache-dir: a daemon started with a fresh directory
(nested, not there yet) starts cold, creates the directory 0700 and writes the cache file 0600;
the next start is warm (its log says so) and not slower; a cache file that is truncated, has a
flipped byte, was written for another device or driver build (in vkresample's header or in the
Vulkan header inside it, checksums made valid again), for other shader sources, or is not a cache
at all is ignored with one log line, the daemon starts, serves correct results and writes a good
file again; a cache directory that cannot be created is logged and not fatal.  Mesa's own shader
cache goes to a private directory, so the first start is cold for it too.  Validation on.

usage: test_pipeline_cache.py DAEMON     (TAP output)"""
import argparse
import glob
import os
import re
import shutil
import stat
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from vkr_testlib import Tap, job_ok, running_daemon  # noqa: E402

HEADER = 96


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def reseal(data):
    """data with both checksums (payload, header) recomputed."""
    data = bytearray(data)
    struct.pack_into('<Q', data, 80, fnv1a64(data[HEADER:]))
    struct.pack_into('<Q', data, 88, fnv1a64(data[:88]))
    return bytes(data)


def start(daemon, cache_dir):
    """Start, run jobs, stop: (log, ready seconds or None, 'cold' / 'warm' / None, jobs right)."""
    with running_daemon(daemon, backend='vulkan', validation=True, extra=('--cache-dir', cache_dir)) as d:
        c = d.client()
        right = all(job_ok(c, 'vulkan', seed) for seed in range(3))
        c.close()
        log = d.stop()
    m = re.search(r'vulkan: ready in ([\d.]+) s \((cold|warm) cache', log)
    return log, (float(m.group(1)) if m else None), (m.group(2) if m else None), right


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('daemon')
    args = ap.parse_args()
    tap = Tap()
    top = tempfile.mkdtemp(prefix='vkr-pcache-')
    os.environ['MESA_SHADER_CACHE_DIR'] = os.path.join(top, 'mesa')
    os.environ.pop('MESA_SHADER_CACHE_DISABLE', None)
    cache_dir = os.path.join(top, 'nested', 'cache')
    try:
        log, cold_s, how, right = start(args.daemon, cache_dir)
        files = glob.glob(os.path.join(cache_dir, 'pipelines-*.bin'))
        tap.check(how == 'cold' and 'starting cold' in log and right, 'fresh --cache-dir: a cold start (%s s), jobs right' % cold_s)
        ok = len(files) == 1 and all(stat.S_IMODE(os.stat(p).st_mode) == 0o700 for p in (os.path.dirname(cache_dir), cache_dir))
        tap.check(ok and stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600 and 'pipeline cache written to' in log,
                  'the directory was created 0700, the cache file written 0600 (%s)' % files)
        tap.check(not [p for p in os.listdir(cache_dir) if not p.endswith('.bin')], 'no temporary file left behind')
        path = files[0] if files else os.path.join(cache_dir, 'missing')
        with open(path, 'rb') as f:
            good = f.read()
        tap.check(good[:8] == b'VKRPLCH\0' and struct.unpack_from('<Q', good, 72)[0] == len(good) - HEADER
                  and reseal(good) == good, 'the file has its header, length and checksums (%d bytes)' % len(good))

        log, warm_s, how, right = start(args.daemon, cache_dir)
        tap.check(how == 'warm' and 'bytes of pipeline data loaded' in log and right, 'restart: a warm start (%s s), jobs right' % warm_s)
        tap.check(cold_s is not None and warm_s is not None and warm_s <= cold_s * 1.25 + 0.25,
                  'the warm start is not slower than the cold one (%s s against %s s)' % (warm_s, cold_s))
        print('# start-up with this test\'s fresh caches: cold %s s, warm %s s' % (cold_s, warm_s))

        def flip(data, at):
            data = bytearray(data)
            data[at] ^= 0x40
            return bytes(data)

        foreign_key = bytearray(good)
        foreign_key[32] ^= 0xff              # pipelineCacheUUID in vkresample's header
        foreign_vk = bytearray(good)
        foreign_vk[HEADER + 16] ^= 0xff      # pipelineCacheUUID in the Vulkan header
        sources = bytearray(good)
        struct.pack_into('<Q', sources, 64, struct.unpack_from('<Q', good, 64)[0] ^ 1)
        cases = [
            ('an empty file', b'', 'truncated'),
            ('the header cut short', good[:50], 'truncated'),
            ('the pipeline data cut short', good[:-4], 'truncated'),
            ('a flipped byte in the pipeline data', flip(good, len(good) - 3), 'the pipeline data\'s checksum'),
            ('a flipped byte in the header', flip(good, 40), 'the header\'s checksum'),
            ('another pipelineCacheUUID in the header', reseal(foreign_key), 'another driver build (pipelineCacheUUID)'),
            ('another pipelineCacheUUID in the Vulkan header', reseal(foreign_vk), 'Vulkan header names another driver build'),
            ('other shader sources', reseal(sources), 'other shader sources'),
            ('not a cache at all', os.urandom(4096), 'bad magic'),
        ]
        for what, data, needle in cases:
            with open(path, 'wb') as f:
                f.write(data)
            log, secs, how, right = start(args.daemon, cache_dir)
            ignored = [line for line in log.splitlines() if 'pipeline cache' in line and 'ignored' in line]
            with open(path, 'rb') as f:
                after = f.read()
            tap.check(how == 'cold' and right and len(ignored) == 1 and needle in ignored[0] and after == good,
                      '%s: ignored with one line, jobs right, a good file written again (%s)' % (what, ignored))

        # a cache directory that cannot be created: logged, the daemon serves all the same
        blocker = os.path.join(top, 'a-file')
        with open(blocker, 'w') as f:
            f.write('not a directory')
        log, secs, how, right = start(args.daemon, os.path.join(blocker, 'cache'))
        tap.check(how == 'cold' and right and 'pipeline cache not written' in log,
                  'an uncreatable --cache-dir: logged, not fatal (%s)' % [line for line in log.splitlines() if 'not written' in line])
    finally:
        shutil.rmtree(top, ignore_errors=True)
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())

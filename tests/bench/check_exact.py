#!/usr/bin/python3
"""Bit-exactness of the CPU backend on larger shapes than the conformance suites draw: the bench
workloads themselves and shapes that reach the kernels' blocking (rows in blocks of 8, column
chunks, ragged edges, big windows).  Runs vkr-bench-backend --dump on each case and compares its
output with torch 1.13's portable kernels (ATEN_CPU_CAPABILITY=default) bit for bit.

usage: check_exact.py [--build DIR] [--only SUBSTRING]"""
import argparse
import os
import subprocess
import sys
import tempfile

os.environ['ATEN_CPU_CAPABILITY'] = 'default'   # the contract: torch's portable kernels
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# vkr-bench-backend arguments; C >= 2 throughout (torch's generic kernels)
CASES = [
    # the bench workloads
    ['mode=bilinear', 'shape=8,3,512,512', 'scale=2', 'ac=0'],
    ['mode=nearest', 'shape=8,3,512,512', 'scale=2'],
    ['mode=bicubic', 'shape=8,3,512,512', 'scale=2', 'ac=0'],
    ['mode=area', 'shape=1,3,1080,1920', 'size=270,480'],
    ['mode=bilinear', 'shape=1,3,1080,1920', 'size=224,224', 'aa=1', 'ac=0'],
    ['mode=trilinear', 'shape=1,4,64,64,64', 'scale=2', 'ac=0'],
    ['op=grid_sample', 'mode=bilinear', 'padding=zeros', 'shape=4,32,256,256', 'grid=4,256,256'],
    ['op=grid_sample', 'mode=bicubic', 'padding=reflection', 'shape=4,32,256,256', 'grid=4,256,256'],
    # wide rows (several column chunks), ragged row blocks, both corner rules
    ['mode=bilinear', 'shape=2,3,67,1500', 'size=130,2999', 'ac=0'],
    ['mode=bilinear', 'shape=2,3,300,2100', 'size=97,333', 'ac=1'],
    ['mode=bilinear', 'shape=1,2,5,3000', 'size=3,17', 'ac=0'],
    ['mode=linear', 'shape=13,5,3000', 'size=4097', 'ac=0'],
    ['mode=linear', 'shape=3,3,2500', 'size=77', 'ac=1'],
    ['mode=bicubic', 'shape=1,3,100,1300', 'scale=2', 'ac=1'],
    ['mode=bicubic', 'shape=2,2,211,3001', 'size=50,400', 'ac=0'],
    ['mode=bicubic', 'shape=1,2,7,9', 'size=301,1103', 'ac=0'],
    ['mode=trilinear', 'shape=1,3,9,30,40', 'size=17,61,33', 'ac=0'],
    ['mode=trilinear', 'shape=2,2,20,13,1100', 'size=7,29,2001', 'ac=1'],
    # area: big windows, overlapping windows, 3-D, upsampling
    ['mode=area', 'shape=2,3,97,3001', 'size=13,29'],
    ['mode=area', 'shape=1,2,9,50,2100', 'size=4,7,1000'],
    ['mode=area', 'shape=2,3,20,30', 'size=47,71'],
    ['mode=area', 'shape=3,3,1000,17', 'size=3,5'],
    ['mode=area', 'shape=1,2,33,4100', 'size=7,1366'],
    # antialias
    ['mode=bicubic', 'shape=2,3,500,3000', 'size=77,123', 'aa=1', 'ac=0'],
    ['mode=bilinear', 'shape=1,3,40,50', 'size=97,101', 'aa=1', 'ac=1'],
    ['mode=bilinear', 'shape=2,2,3000,37', 'size=11,19', 'aa=1', 'ac=0'],
    ['mode=bilinear', 'shape=1,2,31,9000', 'size=5,13', 'aa=1', 'ac=0'],
    # nearest
    ['mode=nearest', 'shape=2,3,100,1000', 'size=231,2300'],
    ['mode=nearest-exact', 'shape=2,3,7,60,70', 'size=15,31,151'],
    # grid_sample 2-D bilinear, every padding, ragged point counts
    ['op=grid_sample', 'mode=bilinear', 'padding=zeros', 'shape=2,5,100,130', 'grid=2,77,99'],
    ['op=grid_sample', 'mode=bilinear', 'padding=border', 'shape=3,3,64,300', 'grid=3,91,45'],
    ['op=grid_sample', 'mode=bilinear', 'padding=reflection', 'shape=1,7,33,65', 'grid=1,203,41'],
    ['op=grid_sample', 'mode=bicubic', 'padding=zeros', 'shape=2,3,64,64', 'grid=2,50,51'],
    ['op=grid_sample', 'mode=nearest', 'padding=border', 'shape=2,3,64,64', 'grid=2,50,51'],
    # C >= 8: the channel-blocked path (ragged last block of 8, planes over one copy chunk of 16384
    # pixels, point tiles of 256 with a ragged end)
    ['op=grid_sample', 'mode=bilinear', 'padding=zeros', 'shape=2,12,150,130', 'grid=2,77,99'],
    ['op=grid_sample', 'mode=bilinear', 'padding=reflection', 'shape=1,8,33,65', 'grid=1,203,41'],
    ['op=grid_sample', 'mode=bicubic', 'padding=border', 'shape=1,9,140,121', 'grid=1,63,85'],
    ['op=grid_sample', 'mode=bicubic', 'padding=zeros', 'shape=3,17,40,50', 'grid=3,31,29'],
]


def parse(args):
    kv = dict(a.split('=', 1) for a in args)
    ints = lambda s: [int(v) for v in s.split(',')]  # noqa: E731
    return kv, ints(kv['shape'])


def reference(kv, shape, x, aux):
    xt = torch.from_numpy(x.reshape(shape))
    if kv.get('op') == 'grid_sample':
        g = [int(v) for v in kv['grid'].split(',')]
        grid = torch.from_numpy(aux.reshape(g + [len(g) - 1]))
        return F.grid_sample(xt, grid, mode=kv['mode'], padding_mode=kv['padding'], align_corners=False).numpy()
    kw = {'mode': kv['mode']}
    if 'size' in kv:
        kw['size'] = [int(v) for v in kv['size'].split(',')]
    else:
        kw['scale_factor'] = float(kv['scale'])
    if 'ac' in kv:
        kw['align_corners'] = bool(int(kv['ac']))
    if kv.get('aa') == '1':
        kw['antialias'] = True
    return F.interpolate(xt, **kw).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default=os.path.join(HERE, '..', '..', 'build'))
    ap.add_argument('--only', help='run the cases whose arguments contain this string')
    args = ap.parse_args()
    tool = os.path.join(args.build, 'tests', 'bench', 'vkr-bench-backend')
    bad = 0
    with tempfile.TemporaryDirectory(prefix='vkr-exact-') as tmp:
        prefix = os.path.join(tmp, 'd')
        for case in CASES:
            if args.only and args.only not in ' '.join(case):
                continue
            r = subprocess.run([tool, '--backend', 'cpu', '--iters', '1', '--warmup', '0', '--dump', prefix, *case],
                               capture_output=True, text=True)
            if r.returncode:
                print('FAIL %s: %s' % (' '.join(case), r.stderr.strip()))
                bad += 1
                continue
            kv, shape = parse(case)
            x = np.fromfile(prefix + '.in', np.float32)
            aux = np.fromfile(prefix + '.aux', np.float32)
            got = np.fromfile(prefix + '.out', np.float32)
            ref = reference(kv, shape, x, aux).reshape(-1)
            same = (got.view(np.uint32) == ref.view(np.uint32)) | (np.isnan(got) & np.isnan(ref))
            ok = got.shape == ref.shape and bool(same.all())
            bad += not ok
            print('%s %s%s' % ('ok  ' if ok else 'FAIL', ' '.join(case),
                               '' if ok else '  (%d of %d differ)' % ((~same).sum() if got.shape == ref.shape else -1, ref.size)))
    print('%d case(s) differ' % bad if bad else 'all bit-exact')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env bash
# Developer entry point on Debian 12: install the packages, build, run the demo or the tests.
#   scripts/dev.sh demo   install, build, start vkresampled on the default socket, submit a demo job
#   scripts/dev.sh test   install, build, run the whole test suite (meson test)
#   scripts/dev.sh bench [--json]   install, build, run the benchmark against torch and OpenCV
#   scripts/dev.sh deps | check-deps | build
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PACKAGES=(build-essential pkg-config meson ninja-build libvulkan-dev mesa-vulkan-drivers
          vulkan-validationlayers vulkan-tools glslang-dev glslang-tools libuv1-dev
          python3-torch python3-numpy)
CHECK_PACKAGES=(clang libclang-rt-14-dev valgrind)    # CI's sanitizer, valgrind and fuzzing stages
BENCH_PACKAGES=(python3-opencv)                        # a peer of the benchmark

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

deps() {
    local missing=()
    for p in "${PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

build() {
    # warnings are fatal for developers and CI; meson's own default (for packagers) leaves them warnings
    [ -f "$BUILD/build.ninja" ] || meson setup -Dwerror=true "$BUILD"
    ninja -C "$BUILD"
}

default_socket() {
    if [ -n "${VKRESAMPLE_SOCKET:-}" ]; then echo "$VKRESAMPLE_SOCKET"
    elif [ -n "${XDG_RUNTIME_DIR:-}" ]; then echo "$XDG_RUNTIME_DIR/vkresample.sock"
    else echo "/tmp/vkresample-$(id -u).sock"; fi
}

demo() {
    local sock log cli="$BUILD/client/vkresample"
    sock=$(default_socket)
    log="${TMPDIR:-/tmp}/vkresampled-$(id -u).log"
    if ! "$cli" --socket "$sock" ping >/dev/null 2>&1; then
        nohup "$BUILD/daemon/vkresampled" --socket "$sock" >"$log" 2>&1 &
        for _ in $(seq 300); do "$cli" --socket "$sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    echo "== vkresampled is running on $sock (log: $log; stop it with: kill $(pgrep -n -x vkresampled))"
    "$cli" --socket "$sock" ping
    local dir; dir=$(mktemp -d)
    /usr/bin/python3 - "$dir" <<'PY'
import sys, numpy as np
x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
np.save(sys.argv[1] + '/in.npy', x)
PY
    "$cli" --socket "$sock" interpolate "$dir/in.npy" "$dir/out.npy" --mode bilinear --scale-factor 2 --align-corners
    ATEN_CPU_CAPABILITY=default /usr/bin/python3 - "$dir" <<'PY'
import sys, numpy as np, torch, torch.nn.functional as F
x = np.load(sys.argv[1] + '/in.npy'); y = np.load(sys.argv[1] + '/out.npy')
ref = F.interpolate(torch.from_numpy(x), scale_factor=2, mode='bilinear', align_corners=True).numpy()
print('demo: bilinear x2 of %s -> %s; max |vkresample - torch| = %g' % (x.shape, y.shape, np.abs(y - ref).max()))
print(y[0, 0, :3, :6])
PY
}

case "${1:-}" in
    deps) deps ;;
    check-deps) deps "${CHECK_PACKAGES[@]}" ;;
    bench) deps "${BENCH_PACKAGES[@]}"; build; /usr/bin/python3 tests/bench/bench.py --build "$BUILD" "${@:2}" ;;
    build) deps; build ;;
    demo) deps; build; demo ;;
    test) deps; build; meson test -C "$BUILD" --print-errorlogs ;;
    *) echo "usage: scripts/dev.sh demo|test|bench|deps|check-deps|build" >&2; exit 2 ;;
esac

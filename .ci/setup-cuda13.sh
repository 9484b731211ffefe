#!/usr/bin/env bash
# The CUDA 13.0 build toolchain for candle 0.11's `cuda` feature, from PyPI wheels: no GPU, no
# driver, no system toolkit needed. Installs once into PREFIX (default ~/.cache/quantdeck-cuda13)
# and is reused while its version stamp matches, so CI pays the ~1.2 GB download on a cold
# machine only. Afterwards: `source PREFIX/env.sh` (CUDA_ROOT, nvcc on PATH, CUDA_COMPUTE_CAP).
#
# From ../shared/reference/cuda-build.md §2 (quantdeck's own copy of the reference script).
# Versions are exactly what PyPI "cuda-toolkit==13.0.2" (PyTorch 2.11 cu130's dependency) pins.
# Keep nvcc at 13.0.x: driver 580 = CUDA 13.0 cannot JIT PTX from nvcc >= 13.1, and cudarc
# 0.19.10 rejects nvcc >= 13.5. ONE pip call: a second `pip install --target` into the same
# folder does not merge the nvidia/ namespace folder.
# Usage: bash .ci/setup-cuda13.sh [PREFIX]
set -euo pipefail
PREFIX=${1:-$HOME/.cache/quantdeck-cuda13}
STAMP="nvcc-13.0.88 crt-13.0.88 nvvm-13.0.88 rt-13.0.96 cccl-13.0.85 nvrtc-13.0.88 curand-10.4.0.35 cublas-13.1.0.3 stub-1"
if [[ -f "$PREFIX/env.sh" && "$(cat "$PREFIX/.stamp" 2>/dev/null)" == "$STAMP" ]]; then
  echo "CUDA 13.0 toolchain already in $PREFIX"
  exit 0
fi
rm -rf "$PREFIX"
PIP=(python3 -m pip)
"${PIP[@]}" --version >/dev/null 2>&1 || PIP=(pip3)
"${PIP[@]}" install --quiet --no-deps --target "$PREFIX" \
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
  nvidia-curand==10.4.0.35 nvidia-cublas==13.1.0.3
CU="$PREFIX/nvidia/cu13"
cd "$CU/lib"
# The wheels ship only versioned sonames; the linker wants the unversioned names.
for l in cudart cublas cublasLt nvrtc; do ln -sf "lib$l.so.13" "lib$l.so"; done
ln -sf libcurand.so.10 libcurand.so
# No wheel ships the driver's libcuda: a stub (soname libcuda.so.1) generated from cuda.h, every
# entry point returning CUDA_ERROR_UNKNOWN. LINK TIME ONLY: never on a run-time library path.
mkdir -p stubs
python3 - "$CU/include" > stubs/libcuda_stub.c <<'PY'
import re, subprocess, sys
inc = sys.argv[1]
raw = open(f"{inc}/cuda.h").read()
pp = subprocess.run(["gcc", "-E", "-P", f"-I{inc}", "-x", "c", f"{inc}/cuda.h"],
                    capture_output=True, text=True, check=True).stdout
names = set(re.findall(r'\b(cu[A-Z][A-Za-z0-9_]*)\s*\(', raw)) | set(re.findall(r'\b(cu[A-Z][A-Za-z0-9_]*)\s*\(', pp))
for n in sorted(names):
    print(f"int {n}(void) {{ return 999; }}")  # 999 = CUDA_ERROR_UNKNOWN
PY
gcc -shared -fPIC -o stubs/libcuda.so.1 -Wl,-soname,libcuda.so.1 stubs/libcuda_stub.c
ln -sf libcuda.so.1 stubs/libcuda.so
cat > "$PREFIX/env.sh" <<ENV
export CUDA_ROOT=$CU            # cudarc adds \$CUDA_ROOT/lib and \$CUDA_ROOT/lib/stubs to the link search path
export PATH=$CU/bin:\$PATH       # cudarc runs 'nvcc --version'; cudaforge (candle-kernels) finds nvcc on PATH
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}  # H100/H200 (sm_90a); no nvidia-smi here
export CUDAFORGE_THREADS=\$(nproc) # cudaforge defaults to half the cores for its nvcc jobs
ENV
echo "$STAMP" > "$PREFIX/.stamp"
echo "CUDA 13.0 toolchain installed in $PREFIX; now: source $PREFIX/env.sh"

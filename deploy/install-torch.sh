#!/bin/sh
# Install torch into the Python named by $PY: a CPU build (`install-torch.sh cpu`, the default)
# or a CUDA build (`install-torch.sh cuda`).
#
# CPU: the configured package index is used when it serves a CPU build of torch==$TORCH_VERSION
# (checked with a dry run, then with torch.version.cuda after installing); otherwise PyTorch's
# CPU wheel index ($TORCH_CPU_INDEX). The default PyPI wheel for Linux x86_64 is the CUDA build
# and pulls about 17 nvidia-* wheels (several GB): this avoids it on machines without a GPU.
# CUDA: from $TORCH_CUDA_INDEX (default PyPI, whose Linux wheel is the CUDA build).
set -eu
PY=${PY:-python3}
KIND=${1:-cpu}
VERSION=${TORCH_VERSION:-2.13.0}
CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
CUDA_INDEX=${TORCH_CUDA_INDEX:-https://pypi.org/simple}

build() {  # "cpu", "cuda" or "none", for torch==$VERSION in $PY
  "$PY" - "$VERSION" <<'PYEOF' 2>/dev/null || echo none
import sys
import torch
if torch.__version__.split("+")[0] != sys.argv[1]:
    print("none")
else:
    print("cuda" if torch.version.cuda else "cpu")
PYEOF
}

case "$KIND" in
cpu)
  if [ "$(build)" = cpu ]; then
    echo "torch $VERSION (CPU build) is installed"; exit 0
  fi
  if [ "$(build)" = cuda ]; then
    "$PY" -m pip uninstall -q -y torch
  fi
  report=$(mktemp)
  if "$PY" -m pip install -q --dry-run --ignore-installed --report "$report" "torch==$VERSION" >/dev/null 2>&1 \
      && ! grep -q '"name": "nvidia-' "$report"; then
    "$PY" -m pip install -q "torch==$VERSION"
  fi
  rm -f "$report"
  if [ "$(build)" != cpu ]; then
    echo "the configured package index has no CPU build of torch $VERSION: using $CPU_INDEX"
    "$PY" -m pip uninstall -q -y torch >/dev/null 2>&1 || true
    "$PY" -m pip install -q --index-url "$CPU_INDEX" "torch==$VERSION"
  fi
  ;;
cuda)
  if [ "$(build)" = cuda ]; then
    echo "torch $VERSION (CUDA build) is installed"; exit 0
  fi
  "$PY" -m pip uninstall -q -y torch >/dev/null 2>&1 || true
  "$PY" -m pip install -q --index-url "$CUDA_INDEX" "torch==$VERSION"
  ;;
*)
  echo "install-torch.sh: unknown build '$KIND': use cpu or cuda" >&2; exit 2
  ;;
esac

got=$(build)
if [ "$got" != "$KIND" ]; then
  echo "install-torch.sh: wanted a $KIND build of torch $VERSION, got: $got" >&2; exit 1
fi
echo "torch $VERSION ($KIND build) installed"

#!/usr/bin/env bash
# Makes a throwaway Python virtual environment with PyTorch and transformers for the peer
# side of embed-report (and train-report). PyTorch is never a dependency of multiret or of
# its CI: nothing runs this unless you do.
#
#   benches/peers/setup.sh [DIR]        # default DIR: target/peers-venv
#
# Then pass `--torch DIR/bin/python` to the report. Any existing environment with torch and
# transformers works as well.
set -euo pipefail
dir="${1:-target/peers-venv}"
python3 -m venv "$dir"
"$dir/bin/pip" install --quiet --upgrade pip
"$dir/bin/pip" install --quiet torch transformers numpy
"$dir/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
echo "ready: pass --torch $dir/bin/python"

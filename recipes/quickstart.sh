#!/usr/bin/env bash
# The main job on the embedded demo corpus (needs: pip install 'metanmt[demo]').
#   recipes/quickstart.sh [OUT_DIR]
set -euo pipefail
metanmt quickstart --output-dir "${1:-runs/quickstart}"

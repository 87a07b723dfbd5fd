#!/usr/bin/env bash
# Prints the median of every criterion benchmark from the last `cargo bench` run, with its 95% interval.
set -euo pipefail
cd "$(dirname "$0")/.."
find target/criterion -path '*/new/estimates.json' | sort | while read -r file; do
    name="${file#target/criterion/}"
    name="${name%/new/estimates.json}"
    python3 - "$file" "$name" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["median"]
ci = d["confidence_interval"]
print(f"{sys.argv[2]:<48} median {d['point_estimate']:>10.0f} ns  (95% CI {ci['lower_bound']:.0f}-{ci['upper_bound']:.0f})")
PY
done

#!/usr/bin/env bash
# Does --measure-rows change the plan on stories260K? (issue 13 acceptance)
# Quantizes stories260K with the default search at TARGET bpw (default 3.0),
# once measuring every row and once per FRACTION, with the default floor of 256
# rows and with no floor (--measure-rows-min 1), and prints one Markdown table:
# per run, how many linears got the same configuration as the full-row run, the
# bpw, the perplexity on all of WikiText-2 test at 512, and the largest standard
# error of a candidate's eps relative to itself.
# Usage: bench/measure/rows_stories.sh [build dir] [shared dir]
#   TARGET=3.0 FRACTIONS="0.25" LOWRANK=whiten
# Output: out/bench-rows-stories/. Runs are kept (delete a run's .json to redo it).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
shared=${2:-../shared}
amlq=$build/bin/amlq
target=${TARGET:-3.0}
fractions=${FRACTIONS:-0.25}
lowrank=${LOWRANK:-whiten}
out=out/bench-rows-stories
mkdir -p "$out"
[[ -x $amlq ]] || { echo "rows_stories: $amlq not found (build first)" >&2; exit 2; }

run() {  # run NAME FRACTION FLOOR
  local name=$1 dir=$out/$1
  [[ -s $out/$name.json ]] && return 0
  "$amlq" quantize "$shared/models/stories260K" --calib "$shared/data/wikitext2/valid.tok512.u16" \
    --calib-samples 128 --calib-seqlen 256 --eval "$shared/data/wikitext2/test.tok512.u16" --eval-seqlen 512 \
    --lowrank "$lowrank" --recipes default --target-bpw "$target" --measure-rows "$2" --measure-rows-min "$3" \
    --work-dir "$dir.work" --out "$dir.h5" --report "$out/$name.json" >"$dir.txt" 2>"$dir.log" ||
    { echo "rows_stories: $name failed: $(tail -1 "$dir.log")" >&2; return 1; }
  rm -f "$dir.h5"
}

run full 1 256
names=(full)
for f in $fractions; do
  run "f$f" "$f" 256
  run "f$f-nofloor" "$f" 1
  names+=("f$f" "f$f-nofloor")
done

python3 - "$out" "${names[@]}" <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
reports = {n: json.load(open(f"{out}/{n}.json")) for n in names}
def choice(r):
    return {l["name"]: (l["spec"], l.get("rank", 0)) for l in r["layers"]}
def worst_stderr(n):
    # The measurement table of the run's work dir: every candidate's eps and stderr.
    table = json.load(open(f"{out}/{n}.work/measure.json"))["payload"]
    worst = 0.0
    for layer in table:
        for c in layer["candidates"]:
            eps = c[3]
            se = c[4] if len(c) > 4 else 0.0
            if eps > 0:
                worst = max(worst, se / eps)
    return worst
full = reports["full"]
base = choice(full)
print(f"search {full['search']} to {full['target_bpw']} bpw, low rank {full['lowrank']}")
print()
print("| run | --measure-rows | --measure-rows-min | same choice as full rows | bpw | ppl | ppl vs full | max stderr/eps |")
print("|---|---|---|---|---|---|---|---|")
for n in names:
    r = reports[n]
    c = choice(r)
    same = sum(1 for k in base if c.get(k) == base[k])
    f = "1" if n == "full" else n[1:].split("-")[0]
    floor = "1" if n.endswith("nofloor") else "256"
    rel = 100 * (r["quantized_ppl"] / full["quantized_ppl"] - 1)
    print(f"| {n} | {f} | {floor} | {same}/{len(base)} | {r['achieved_bpw']:.3f} | {r['quantized_ppl']:.2f} | "
          f"{rel:+.2f}% | {100 * worst_stderr(n):.1f}% |")
PY

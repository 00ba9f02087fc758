#!/usr/bin/env bash
# Issue 15's evidence table: does the search beat uniform at equal bits?
# For every model in ../shared/models (or $MODELS) and every calibration seed,
# one measurement (per low-rank setting) is reused by every run (--resume):
#   - the uniform GPTQ front (no low-rank): 2b-g32, 3b-g64, 3b-g32, 4b-g64, 4b-g32
#   - minmax, minmax-weighted, minsum-unweighted, minsum (loss-weighted), each
#     as the search alone (--validate-windows 0), and minsum+validation (the
#     default: the plan with the lowest held-out NLL among minsum's, the
#     uniform-front plan and minmax's), each with --lowrank none and whiten, at
#     2.5 / 3.0 / 3.5 / 4.25 bpw and at the uniform 2b-g32 and 3b-g64 runs' own
#     budgets (their bpw rounded up to 1e-6, so that the uniform plan fits).
# Prints one Markdown table per model (seed-mean ppl, +- half the min-max spread),
# the acceptance checks of issue 15, and the correlation between the predicted
# (sensitivities) and measured NLL increase over all runs; draws
# out/bench-search/<model>.svg (ppl against bpw, one line per method).
# Usage: bench/search/evidence.sh [build dir] [shared dir]
#   SEEDS="0 1 2"  MODELS="stories260K wikikjv-llama"  EVAL_WINDOWS=200 (0: all)
#   A shorter run (tests/bench/search_bench_test.sh runs one in CI):
#   METHODS="minsum minsum+validation"  BUDGETS="3.0"  LOWRANKS="none whiten"
#   CALIB_SAMPLES=128  OUT=out/bench-search (where reports and pictures go)
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/search/common.sh
out=${OUT:-out/bench-search}
mkdir -p "$out"
read -r -a methods <<<"${METHODS:-minmax minmax-weighted minsum-unweighted minsum minsum+validation}"
read -r -a lowranks <<<"${LOWRANKS:-none whiten}"

run() {  # run MODEL SEED LOWRANK NAME ARGS...: one quantization, its report in $out/MODEL/s$SEED/NAME.json
  local model=$1 seed=$2 lowrank=$3 name=$4
  shift 4
  local dir=$out/$model/s$seed
  mkdir -p "$dir"
  [[ -s $dir/$name.json ]] && return 0
  "$amlq" quantize "$shared/models/$model" --calib "$calib" --calib-samples "$calib_samples" --calib-seqlen 256 --calib-seed "$seed" \
    --eval "$test" --eval-seqlen 512 --eval-max-windows "$eval_windows" --recipes default --lowrank "$lowrank" \
    --work-dir "$dir/work-$lowrank" --resume --out "$dir/$name.h5" --report "$dir/$name.json" "$@" \
    >"$dir/$name.txt" 2>"$dir/$name.log" || { echo "$model seed $seed $name failed: $(tail -1 "$dir/$name.log")" >&2; return 1; }
  rm -f "$dir/$name.h5"
}

for model in $models; do
  for seed in $seeds; do
    echo "[$(date +%T)] $model seed $seed" >&2
    for spec in "${uniform_specs[@]}"; do run "$model" "$seed" none "uniform-$spec" --search "uniform:$spec" --target-bpw 8; done
    own=()
    for spec in 2b-g32 3b-g64; do
      own+=("$(own_budget "$out/$model/s$seed/uniform-$spec.json")")
    done
    for lowrank in "${lowranks[@]}"; do
      for method in "${methods[@]}"; do
        search=(--search "${method%+validation}")
        [[ $method == *+validation ]] || search+=(--validate-windows 0)
        for b in "${budgets[@]}" "${own[@]}"; do run "$model" "$seed" "$lowrank" "$method-$lowrank-$b" "${search[@]}" --target-bpw "$b"; done
      done
    done
  done
done

python3 - "$out" "$models" "$seeds" <<'PY'
import glob, json, math, os, re, sys
out, models, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
all_pred, all_meas = [], []
for model in models:
    runs = {}  # (series, budget label) -> [(bpw, ppl)]
    for seed in seeds:
        for path in sorted(glob.glob(f"{out}/{model}/s{seed}/*.json")):
            name = os.path.basename(path)[:-5]
            r = json.load(open(path))
            if name.startswith("uniform-"):
                series, budget = "uniform", name[len("uniform-"):]
            else:
                m = re.match(r"(.*)-(none|whiten)-([0-9.]+)$", name)
                series, budget = f"{m.group(1)} ({'no low-rank' if m.group(2) == 'none' else 'whiten low-rank'})", m.group(3)
            runs.setdefault((series, budget), []).append((r["achieved_bpw"], r["quantized_ppl"]))
            if r.get("predicted_delta_nll", 0) > 0:
                all_pred.append(r["predicted_delta_nll"])
                all_meas.append(r["eval"]["measured_delta_nll"])
    def cell(v):
        ppl = [p for _, p in v]
        mean = sum(ppl) / len(ppl)
        return mean, (max(ppl) - min(ppl)) / 2, sum(b for b, _ in v) / len(v)
    print(f"\n### {model} ({len(seeds)} calibration seeds; WikiText-2 test, seqlen 512, ppl: seed mean +- half the spread)\n")
    uni = {b: cell(v) for (s, b), v in runs.items() if s == "uniform"}
    print("| uniform GPTQ | " + " | ".join(uni) + " |")
    print("|---|" + "---|" * len(uni))
    print("| bpw | " + " | ".join(f"{c[2]:.3f}" for c in uni.values()) + " |")
    fmt = ".3f" if min(c[0] for c in uni.values()) < 50 else ".2f"  # small ppl: one more digit
    print("| ppl | " + " | ".join(f"{c[0]:{fmt}} +- {c[1]:{fmt}}" for c in uni.values()) + " |")
    budgets = sorted({b for (s, b) in runs if s != "uniform"}, key=float)
    print("\n| search | " + " | ".join(budgets) + " |")
    print("|---|" + "---|" * len(budgets))
    series = sorted({s for (s, b) in runs if s != "uniform"})
    front = sorted((c[2], c[0]) for c in uni.values())
    def front_at(x):  # piecewise-linear uniform front (seed means)
        pts = [p for p in front]
        best = None
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            if x0 <= x <= x1 and x1 > x0:
                y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
                best = y if best is None else min(best, y)
        return best
    for s in series:
        cells = []
        for b in budgets:
            if (s, b) in runs:
                m, h, _ = cell(runs[(s, b)])
                f = front_at(float(b))
                mark = "" if f is None else (" *" if m <= f else "")
                cells.append(f"{m:{fmt}} +- {h:{fmt}}{mark}")
            else:
                cells.append("-")
        print(f"| {s} | " + " | ".join(cells) + " |")
    print("\n`*`: at or below the piecewise-linear uniform front (seed means).")
    # Acceptance lines of issue 15 for the default search.
    default = "minsum+validation (whiten low-rank)"
    for spec in ("3b-g64", "2b-g32"):
        if spec in uni:
            own = [b for b in budgets if abs(float(b) - uni[spec][2]) < 1e-3]
            if own and (default, own[0]) in runs:
                m = cell(runs[(default, own[0])])[0]
                print(f"- {default} at uniform {spec}'s budget {own[0]}: {m:{fmt}} vs uniform {uni[spec][0]:{fmt}}: "
                      f"{'no worse' if m <= uni[spec][0] else 'WORSE'}")
    if (default, "3.0") in runs and ("minmax (whiten low-rank)", "3.0") in runs:
        a, b = cell(runs[(default, "3.0")])[0], cell(runs[("minmax (whiten low-rank)", "3.0")])[0]
        print(f"- {default} at 3.0: {a:{fmt}} vs minmax {b:{fmt}}: {'no worse' if a <= b else 'WORSE'}")
    # Which plan the validation kept, over every validated run of this model.
    kept = {}
    for seed in seeds:
        for path in glob.glob(f"{out}/{model}/s{seed}/minsum+validation-*.json"):
            v = json.load(open(path)).get("validation")
            if v:
                m = next(p["method"] for p in v["plans"] if p["chosen"])
                m = "front" if m.startswith(("front:", "uniform:")) else m
                kept[m] = kept.get(m, 0) + 1
    if kept:
        print("- plans the validation kept: " + ", ".join(f"{m} {n}" for m, n in sorted(kept.items())))
    # The picture: ppl (log) against bpw, one polyline per series.
    W, H, L, T = 760, 460, 70, 30
    pts = {s: sorted((cell(v)[2], cell(v)[0]) for (ss, b), v in runs.items() if ss == s) for s in series + ["uniform"]}
    xs = [x for p in pts.values() for x, _ in p]
    ys = [math.log(y) for p in pts.values() for _, y in p]
    x0, x1, y0, y1 = min(xs) - 0.05, max(xs) + 0.05, min(ys) - 0.05, max(ys) + 0.05
    X = lambda x: L + (x - x0) / (x1 - x0) * (W - L - 230)
    Y = lambda y: T + (y1 - math.log(y)) / (y1 - y0) * (H - T - 50)
    colors = ["#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="18" font-size="13">{model}: WikiText-2 ppl (log scale) against bits per weight, mean of {len(seeds)} seeds</text>',
           f'<line x1="{L}" y1="{H-50}" x2="{W-230}" y2="{H-50}" stroke="black"/><line x1="{L}" y1="{T}" x2="{L}" y2="{H-50}" stroke="black"/>']
    for i in range(6):
        x = x0 + (x1 - x0) * i / 5
        svg.append(f'<text x="{X(x):.0f}" y="{H-32}" text-anchor="middle">{x:.2f}</text>')
        y = math.exp(y0 + (y1 - y0) * i / 5)
        svg.append(f'<text x="{L-5}" y="{Y(y):.0f}" text-anchor="end">{y:.3g}</text>')
    svg.append(f'<text x="{(L+W-230)/2:.0f}" y="{H-10}" text-anchor="middle">bits per weight</text>')
    for i, s in enumerate(["uniform"] + series):
        c = colors[i % len(colors)]
        p = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts[s])
        dash = ' stroke-dasharray="5,3"' if "no low-rank" in s else ""
        svg.append(f'<polyline fill="none" stroke="{c}" stroke-width="{3 if s == "uniform" else 1.5}"{dash} points="{p}"/>')
        for x, y in pts[s]:
            svg.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="2.5" fill="{c}"/>')
        svg.append(f'<text x="{W-220}" y="{T+14+16*i}" fill="{c}">{s}</text>')
    svg.append("</svg>")
    open(f"{out}/{model}.svg", "w").write("\n".join(svg))
    print(f"\npicture: {out}/{model}.svg")
if len(all_pred) > 2:
    n = len(all_pred)
    mp, mm = sum(all_pred) / n, sum(all_meas) / n
    cov = sum((p - mp) * (m - mm) for p, m in zip(all_pred, all_meas))
    r = cov / math.sqrt(sum((p - mp) ** 2 for p in all_pred) * sum((m - mm) ** 2 for m in all_meas))
    print(f"\nPredicted vs measured NLL increase over all {n} runs: Pearson r = {r:.3f}, "
          f"measured / predicted = {mm / mp:.2f} on average")
PY

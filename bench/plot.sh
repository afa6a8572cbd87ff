#!/usr/bin/env bash
# Draws the README's latency picture from one bench/run.sh run: webhook
# latency by percentile (HdrHistogram's plot: the x axis stretches the tail)
# of digestd and each peer, at each closed-loop load, from the "curve" of
# their digest-bench --json reports (the last round of each). gnuplot from
# Debian's gnuplot-nox.
#
#   bench/plot.sh DIR OUT.png
set -euo pipefail
dir=$1 out=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One data file per load and target: x = 1 / (1 - p), latency in ms.
loads=$(python3 - "$dir" "$tmp" <<'PY'
import glob, json, os, re, sys
d, tmp = sys.argv[1:3]
last = {}
for f in glob.glob(os.path.join(d, "webhook-c*-r*.json")):
    m = re.search(r"webhook-c(\d+)-(.+)-r(\d+)\.json$", f)
    c, t, r = int(m.group(1)), m.group(2), int(m.group(3))
    if last.get((c, t), (0,))[0] < r:
        last[(c, t)] = (r, f)
for (c, t), (_, f) in last.items():
    with open(os.path.join(tmp, "c%d-%s.dat" % (c, t)), "w") as out:
        for p, ms in json.load(open(f))["webhook"]["curve"]:
            if 0 < p < 100 and ms > 0:
                out.write("%.6f %.3f\n" % (1 / (1 - p / 100), ms))
print(" ".join(str(c) for c in sorted({c for c, _ in last})))
PY
)
n=$(echo "$loads" | wc -w)
{
  echo "set terminal pngcairo size $((560 * n)),460 font 'Sans,10'"
  echo "set output '$out'"
  echo "set multiplot layout 1,$n"
  echo "set logscale xy"
  echo "set xtics ('50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, '99.999%%' 100000)"
  echo "set xlabel 'percentile'"
  echo "set ylabel 'webhook answer, ms (JWT checked, card posted)'"
  echo "set grid"
  echo "set key top left"
  for c in $loads; do
    echo "set title 'closed loop, $c connections (the run''s last round)'"
    plot="plot"
    for t in digestd node-http fastapi botbuilder; do
      f="$tmp/c$c-$t.dat"
      [ -s "$f" ] || continue
      plot="$plot '$f' using 1:2 with linespoints title '$t',"
    done
    echo "${plot%,}"
  done
  echo "unset multiplot"
} >"$tmp/plot.gp"
gnuplot "$tmp/plot.gp"
echo "plot.sh: wrote $out"

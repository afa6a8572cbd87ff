#!/usr/bin/env bash
# Prints the CPU seconds (utime + stime, from /proc/PID/stat) used so far by
# each PID, then the busy and steal seconds of the whole machine (all CPUs,
# from /proc/stat). Take two samples and subtract to get the CPU of a window.
#
#   bench/cpu.sh PID...        e.g. bench/cpu.sh $digestd_pid $redis_pid
set -euo pipefail
hz=$(getconf CLK_TCK)
for p in "$@"; do
    # Field 2 (comm) may hold spaces: cut after its closing parenthesis, so
    # utime and stime are fields 12 and 13 of the rest (14 and 15 overall).
    stat=$(cat "/proc/$p/stat")
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    awk -v p="$p" -v c="${stat#*(}" -v u="${f[11]}" -v s="${f[12]}" -v hz="$hz" \
        'BEGIN { sub(/\).*/, "", c); printf "%s %s %.2f\n", p, c, (u + s) / hz }'
done
# /proc/stat "cpu" line: user nice system idle iowait irq softirq steal ...
awk -v hz="$hz" '/^cpu / { printf "machine busy %.2f steal %.2f\n", \
    ($2 + $3 + $4 + $7 + $8) / hz, $9 / hz }' /proc/stat

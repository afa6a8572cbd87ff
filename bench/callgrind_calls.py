#!/usr/bin/env python3
"""Calls to named functions in a callgrind output file, and its total Ir per
transfer (per call to curl_multi_add_handle: one per outbound request).

    bench/callgrind_calls.py FILE [FUNCTION...]
"""
import collections
import re
import sys


def main():
    path, names = sys.argv[1], sys.argv[2:]
    ids = {}  # callgrind's name compression: "(12) name" once, then "(12)"
    calls = collections.Counter()
    total = 0
    callee = None
    with open(path) as f:
        for line in f:
            m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?", line)
            if m:
                kind, i, name = m.groups()
                if name:
                    ids[i] = name.strip()
                if kind == "cfn":
                    callee = ids.get(i)
            elif line.startswith("calls="):
                calls[callee] += int(line.split()[0][len("calls="):])
            elif line.startswith("summary:"):
                total = int(line.split()[1])
    transfers = calls["curl_multi_add_handle"]
    print(f"{path}: {total} Ir, {transfers} transfers, {total // max(transfers, 1)} Ir per transfer")
    for n in names:
        print(f"  {n}: {calls[n]} calls")


if __name__ == "__main__":
    main()

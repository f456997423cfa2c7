#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Runs bench_e2e and checks that its summary agrees with itself: every
# missed isolated/direct IOPS target of a mode with CPU figures is followed
# by the line bounding it by CPU time, with the figures of the CPU table and
# of the IOPS table, and the verdict those figures give; nothing else is.
#   check-e2e.py PROGRAM DIR [ARG...]   (PROGRAM runs as PROGRAM --out DIR ARG...)
# Exit status: PROGRAM's when it fails (77: skipped), 1 on a disagreement.
import re
import subprocess
import sys


def fail(msg):
    print("check-e2e: " + msg)
    sys.exit(1)


def table_rows(lines, header):
    """Rows of the markdown table whose header line starts with @header."""
    rows, inside = [], False
    for line in lines:
        if line.startswith(header):
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            if not line.startswith("|---"):
                rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def main():
    if len(sys.argv) < 3:
        fail("usage: check-e2e.py PROGRAM DIR [ARG...]")
    exe, out = sys.argv[1], sys.argv[2]
    rc = subprocess.call([exe, "--out", out] + sys.argv[3:])
    if rc:
        sys.exit(rc)
    with open(out + "/e2e.md") as f:
        lines = f.read().splitlines()

    direct = {r[0]: r[1] for r in table_rows(lines, "| config | direct IOPS")}
    cpu = {(r[0], r[1]): r for r in table_rows(lines, "| config | mode | guest")}
    if not direct or not cpu:
        fail("no IOPS or CPU table in e2e.md")
    ncpus = None
    for line in lines:
        m = re.search(r"the (\d+) CPUs? this run may use", line)
        if m:
            ncpus = int(m.group(1))
    if not ncpus:
        fail("e2e.md does not say how many CPUs the run may use")

    target = re.compile(r"^- (PASS|MISS): e2e (\S+) (isolated|isolated-inline) "
                        r"\(.*\)/direct IOPS: ([0-9.]+) \(target >= ([0-9.]+)\)$")
    bound = re.compile(r"^  - at ([0-9.]+) us of CPU per request, (\d+) CPUs? "
                       r"allow at most (\d+) IOPS, ([0-9.]+) of direct: (.*)$")
    checked = 0
    for i, line in enumerate(lines):
        if bound.match(line) and not target.match(lines[i - 1]):
            fail("a CPU bound with no ratio target above it: " + line)
        m = target.match(line)
        if not m:
            continue
        verdict, cfg, mode, ratio, limit = m.groups()
        row = cpu.get((cfg, mode))
        nxt = bound.match(lines[i + 1]) if i + 1 < len(lines) else None
        want = verdict == "MISS" and row is not None and row[5] != "n/a"
        if not want:
            if nxt:
                fail("a CPU bound under a target that needs none: " + line)
            continue
        if not nxt:
            fail("no CPU bound under: " + line)
        total, n, ceiling, best, words = nxt.groups()
        if total != row[5] or ceiling != row[8]:
            fail("%s %s: bound says %s us, %s IOPS; the CPU table %s us, %s IOPS"
                 % (cfg, mode, total, ceiling, row[5], row[8]))
        if int(n) != ncpus:
            fail("%s %s: bound for %s CPUs, the run had %d" % (cfg, mode, n, ncpus))
        if abs(float(ceiling) - ncpus * 1e6 / float(total)) > 0.01 * float(ceiling) + 1:
            fail("%s %s: ceiling %s is not %d x 10^6 / %s" % (cfg, mode, ceiling, ncpus, total))
        d = float(direct[cfg])
        if abs(float(best) - float(ceiling) / d) > 0.0015:
            fail("%s %s: %s of direct, but %s / %s IOPS is %.4f"
                 % (cfg, mode, best, ceiling, direct[cfg], float(ceiling) / d))
        short = float(ceiling) < float(limit) * d
        if short != words.startswith("short of the target"):
            fail("%s %s: verdict '%s' for a ceiling of %s against %s x %s"
                 % (cfg, mode, words, ceiling, limit, direct[cfg]))
        checked += 1
    print("check-e2e: %d missed ratio target(s) bounded by CPU time, all consistent"
          % checked)


main()

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Runs bench_e2e and checks that its summary agrees with itself: every
# missed isolated/direct IOPS target of a mode with CPU figures is followed
# by the line bounding it by CPU time, with the figures of the CPU table and
# of the IOPS table, and the verdict those figures give; nothing else is.
# Likewise every missed IOPS/ceiling target of a pinned run, by the line
# giving the busiest CPU as placed.
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


def under(lines, target, sub, name, needs):
    """(groups of each target line, groups of the @sub line right under it)
    for every target line @needs(groups) says wants one; fails on a missing
    @name line, or one under a target that needs none or under no target."""
    pairs = []
    for i, line in enumerate(lines):
        if sub.match(line) and not target.match(lines[i - 1]):
            fail("a %s with no target above it: %s" % (name, line))
        m = target.match(line)
        if not m:
            continue
        nxt = sub.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not needs(m.groups()):
            if nxt:
                fail("a %s under a target that needs none: %s" % (name, line))
            continue
        if not nxt:
            fail("no %s under: %s" % (name, line))
        pairs.append((m.groups(), nxt.groups()))
    return pairs


def missed_with_cpu(cpu):
    """For under(): a missed target (groups: verdict, config, mode, ...)
    whose mode has CPU figures in @cpu."""
    def needs(g):
        row = cpu.get((g[1], g[2]))
        return g[0] == "MISS" and row is not None and row[5] != "n/a"
    return needs


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
    pairs = under(lines, target, bound, "CPU bound", missed_with_cpu(cpu))
    for (_, cfg, mode, _, limit), nxt in pairs:
        row = cpu[(cfg, mode)]
        total, n, ceiling, best, words = nxt
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
    print("check-e2e: %d missed ratio target(s) bounded by CPU time, all consistent"
          % len(pairs))
    check_placed(lines, cpu, ncpus)


PARTIES = {
    "the guest driver": ("guest",),
    "the guest driver and the relay thread": ("guest", "relay"),
    "qemu-storage-daemon": ("daemon",),
    "qemu-storage-daemon and the relay thread": ("daemon", "relay"),
    "the relay thread": ("relay",),
}
COLUMN = {"guest": 2, "relay": 3, "daemon": 4}


def check_placed(lines, cpu, ncpus):
    """Every missed IOPS/ceiling target of a pinned run is followed by the
    busiest CPU as placed, whose figures come from the CPU and IOPS tables,
    with the share of the ceiling it allows, the same for direct, and
    whether that share is short of the target."""
    pinned = any("pinned by the adapter's relay_start hook" in l for l in lines)
    target = re.compile(r"^- (PASS|MISS): e2e (\S+) (isolated|isolated-inline) "
                        r"\(.*\) IOPS over the ceiling of its CPU per request"
                        r"(?: \([a-z ]+\))*: ([0-9.]+) \(target >= ([0-9.]+)\)$")
    placed = re.compile(r"^  - as placed, CPU (\d+) \((.*)\) carried ([0-9.]+) us "
                        r"per request, which allows at most (\d+) IOPS, ([0-9.]+) "
                        r"of the ceiling \(direct's busiest CPU: ([0-9.]+|nan) of "
                        r"its own\)(, short of the target even with that CPU "
                        r"always busy)?; the run reached ([0-9.]+) of that: (.*)$")
    iops = {}
    for r in table_rows(lines, "| config | direct IOPS"):
        iops[(r[0], "isolated")] = r[2]
        iops[(r[0], "isolated-inline")] = r[4]

    pairs = under(lines, target, placed, "placed CPU",
                  missed_with_cpu(cpu) if pinned else lambda g: False)
    for (_, cfg, mode, _, limit), nxt in pairs:
        row = cpu[(cfg, mode)]
        _, who, carried, most, share, dshare, short, reached, words = nxt
        if who not in PARTIES:
            fail("%s %s: unknown parties '%s'" % (cfg, mode, who))
        if mode == "isolated-inline" and "relay" in PARTIES[who]:
            fail("%s %s: a relay thread in a mode that has none" % (cfg, mode))
        want_us = sum(float(row[COLUMN[p]]) for p in PARTIES[who])
        if abs(float(carried) - want_us) > 0.011 * len(PARTIES[who]):
            fail("%s %s: carried %s us, the CPU table gives %.2f for %s"
                 % (cfg, mode, carried, want_us, who))
        for p, col in COLUMN.items():
            if (p != "relay" or mode == "isolated") and \
                    float(row[col]) > float(carried) + 0.011:
                fail("%s %s: %s carried %s us, not the busiest (%s: %s)"
                     % (cfg, mode, who, carried, p, row[col]))
        if abs(float(most) - 1e6 / float(carried)) > 0.01 * float(most) + 1:
            fail("%s %s: %s IOPS is not 10^6 / %s" % (cfg, mode, most, carried))
        want = float(row[5]) / (ncpus * float(carried))
        if abs(float(share) - want) > 0.002 + 0.011 * want / float(carried):
            fail("%s %s: %s of the ceiling, but %s / (%d x %s) is %.4f"
                 % (cfg, mode, share, row[5], ncpus, carried, want))
        if (short is not None) != (float(share) < float(limit)):
            fail("%s %s: %s of the ceiling %s short of the %s target"
                 % (cfg, mode, share, "said" if short else "not said", limit))
        drow = cpu.get((cfg, "direct"))
        if drow is not None and drow[5] != "n/a":
            most_d = max(float(drow[2]), float(drow[4]))
            want = float(drow[5]) / (ncpus * most_d)
            if dshare == "nan" or \
                    abs(float(dshare) - want) > 0.002 + 0.011 * want / most_d:
                fail("%s %s: direct's busiest CPU %s of its ceiling, but "
                     "%s / (%d x %.2f) is %.4f"
                     % (cfg, mode, dshare, drow[5], ncpus, most_d, want))
        got = float(iops[(cfg, mode)]) / float(most)
        if abs(float(reached) - got) > 0.002:
            fail("%s %s: reached %s, but %s / %s IOPS is %.4f"
                 % (cfg, mode, reached, iops[(cfg, mode)], most, got))
        busy = float(reached) >= float(limit)
        if busy != words.startswith("that CPU was kept busy"):
            fail("%s %s: verdict '%s' for %s of the busiest CPU"
                 % (cfg, mode, words, reached))
    print("check-e2e: %d missed ceiling target(s) with the busiest CPU as placed, "
          "all consistent" % len(pairs))


main()

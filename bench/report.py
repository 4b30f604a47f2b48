#!/usr/bin/env python3
"""Turn the output of bench/guest-bench.sh into the benchmark report (see bench/run).

Writes OUT_DIR/STEM.csv (every run), OUT_DIR/STEM.md (tables), OUT_DIR/latest.md (the
same, with the plots) and OUT_DIR/latest-{read,write,copy}.svg (throughput by transfer
size, when gnuplot is available and there is more than one size); for the latency
section latest-latency.md and latest-latency.svg (bars per tool at 1 MiB). bench/run keeps the
guest output as STEM.log and its host facts as STEM.info, so a report can be made again:
  bench/report.py --log R/STEM.log --host-info R/STEM.info --out-dir R --stem STEM \
      --gnuplot gnuplot

Exit status: 0 every workload ran (failures listed as expected do not count), 1 a run or
a data check failed unexpectedly, or the guest did not finish, 2 usage or no data.
"""

import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys

SEQ = ["read", "write", "copy"]
RAND = ["rand64k", "randread", "randwrite"]
SECTION = "delay0"  # or "latency": from @@META section

# Failures known and documented, reported but not counted against the run.
EXPECTED_FAILURES = {
    ("copy", "sgm_dd.odio"): "expected: sgm_dd oflag=dio fails with EFAULT (Bad address) on this kernel",
}

TITLES = {
    "rand64k": "64 KiB random read, 8 in flight",
    "read": "Sequential read",
    "write": "Sequential write",
    "copy": "Disk-to-disk copy (sg0 to sg1)",
    "randread": "4 KiB random read",
    "randwrite": "4 KiB random write",
}

DESCRIPTIONS = {
    "read": "Reads the whole first disk ({mb} MiB) into /dev/null, one command or read() "
    "per transfer size. sg tools: `if=/dev/sg0 of=/dev/null bs=512 bpt=SIZE/512`; dd: "
    "`dd if=/dev/sda of=/dev/null bs=SIZE` (page cache dropped before each run, so "
    "buffered dd reads through readahead); qemu-storage-daemon: host_device "
    "cache.direct=on exported over FUSE, read with `dd iflag=direct`; sgfs: plain `dd "
    "if=MNT/sg0 bs=SIZE` (sgfs files are FUSE direct_io, no page cache).",
    "write": "Writes {mb} MiB of random data from a tmpfs file over the first disk. "
    "sg tools: `if=/tmp/src of=/dev/sg0`; dd page cache: `conv=fsync` (the flush is "
    "timed); dd, qemu-storage-daemon: `oflag=direct`; sgfs: plain `dd conv=notrunc`.",
    "copy": "Copies the first disk onto the second ({mb} MiB). sg tools: `if=/dev/sg0 "
    "of=/dev/sg1` (dio rows: iflag=dio oflag=dio; sgm_dd maps the input's reserve "
    "buffer); dd page cache: `conv=fsync`; dd, qemu-storage-daemon: iflag=direct "
    "oflag=direct; cp: `cp SRC DST`, which picks its own buffer size (column cp); sgfs: "
    "dd and cp between MNT/sg0 and MNT/sg1.",
    "randread": "fio, 4 KiB random reads over the whole disk, time based ({rt} s per "
    "run), numjobs = the column, each job synchronous (queue depth 1 per job): "
    "`--ioengine=sg` on /dev/sg0, `--ioengine=psync --direct=1` on /dev/sda, on the "
    "qemu-storage-daemon FUSE file and on MNT/sg0.",
    "randwrite": "As random read, with 4 KiB random writes.",
}
CEILING_NOTE = (" FUSE ceiling: bench/nullfs, a null file system of two files served from "
                "memory with sgfs's mount options, FUSE_INIT settings, request loop and "
                "per-file flags; the same commands as the sgfs rows (its cp copies with "
                "copy_file_range, as sgfs's does). It shows what FUSE itself allows in this "
                "guest, with no device behind it.")

LATENCY_DESCRIPTIONS = {
    "read": "Reads the first {mb} MiB disk into /dev/null in 1 MiB commands or read()s: "
    "sg tools `if=/dev/sg0 bs=512 bpt=2048` (sg_dd iflag=dio, sgm_dd, sgp_dd thr=4), dd "
    "`iflag=direct` on /dev/sda, fio `--ioengine=libaio --iodepth=8 --direct=1 "
    "--rw=read --bs=1m` on /dev/sda (time based, {rt} s), plain dd on the sgfs file. "
    "fio's figures are over its own runtime, without its start-up; the other rows' "
    "include their process start (about 0.1–0.2 s in this guest).",
    "write": "Writes {mb} MiB of random data from tmpfs over the first disk in 1 MiB "
    "commands, each writer ending with a flush: the sg tools with `sync=1` (SYNCHRONIZE "
    "CACHE), dd `oflag=direct conv=fsync` on /dev/sda, fio libaio depth 8 with "
    "`end_fsync=1`, and plain dd `conv=notrunc,fsync` on the sgfs file.",
    "copy": "Copies the first disk onto the second ({mb} MiB): sg tools `if=/dev/sg0 "
    "of=/dev/sg1 bs=512 bpt=2048 sync=1` (sg_dd iflag=dio oflag=dio), dd O_DIRECT "
    "conv=fsync, `cp /dev/sda /dev/sdb` (page cache; the last close flushes it), and on "
    "sgfs dd bs=1M conv=fsync and `cp` (copy_file_range: sg to sg inside sgfs).",
    "rand64k": "fio, 64 KiB random reads over the whole disk, one job with 8 IOs in flight, "
    "{rt} s: `--ioengine=libaio --iodepth=8 --direct=1` on /dev/sda, on the sgfs file and "
    "on the ceiling; `--ioengine=sg --iodepth=8` on /dev/sg0.",
    "randread": "fio, 4 KiB random reads over the whole disk, numjobs = the column, each job "
    "synchronous (one IO in flight per job), {rt} s: `--ioengine=sg` on /dev/sg0, "
    "`--ioengine=psync --direct=1` on /dev/sda, on the sgfs file and on the ceiling.",
}


# sgfs rows that are not a plain io= mode: label -> their -o options (from @@META variant.*)
VARIANTS = {}


def sgfs_name(name, side="sgfs"):
    """side: sgfs (the build under test) or sgfs-base (bench/run --baseline)."""
    if name in VARIANTS:
        return f"**{side} {name}** ({VARIANTS[name]})"
    return f"**{side} io={name}**"


def label(tool):
    m = re.fullmatch(r"(.+)\.qd(\d+)", tool)
    if m:
        how = "sg engine" if m.group(1) == "fio.sg" else "libaio"
        return f"{label(m.group(1))}, {how} depth {m.group(2)}"
    fixed = {
        "null.dd": "FUSE ceiling (bench/nullfs), dd",
        "null.cp": "FUSE ceiling (bench/nullfs), cp",
        "fio.null": "fio FUSE ceiling (bench/nullfs)",
        "sg_dd": "sg_dd (indirect)",
        "sg_dd.dio": "sg_dd dio",
        "sgm_dd": "sgm_dd (mmap)",
        "sgm_dd.odio": "sgm_dd oflag=dio",
        "sgp_dd": "sgp_dd thr=4",
        "dd.buf": "dd sdX, page cache",
        "dd.direct": "dd sdX, O_DIRECT",
        "cp.dev": "cp /dev/sda /dev/sdb",
        "qsd.dd": "qemu-storage-daemon FUSE, dd O_DIRECT",
        "fio.sg": "fio sg engine, /dev/sg0",
        "fio.sd": "fio /dev/sda O_DIRECT",
        "fio.qsd": "fio qemu-storage-daemon FUSE",
    }
    if tool in fixed:
        return fixed[tool]
    m = re.fullmatch(r"(sgfs|sgfs-base)\.(\w+)\.(dd|cp)", tool)
    if m:
        return f"{sgfs_name(m.group(2), m.group(1))}, {m.group(3)}"
    m = re.fullmatch(r"fio\.(sgfs|sgfs-base)\.(\w+)", tool)
    if m:
        return f"fio {sgfs_name(m.group(2), m.group(1))}"
    return tool


def is_sgfs(tool):
    return re.match(r"(fio\.)?sgfs(-base)?\.", tool) is not None


def is_ceiling(tool):
    return re.match(r"(fio\.)?null(\.|$)", tool) is not None


def ceiling_of(tool):
    """The ceiling's row for an sgfs row (same command on bench/nullfs), or None."""
    m = re.fullmatch(r"sgfs(?:-base)?\.\w+\.(dd|cp)", tool)
    if m:
        return f"null.{m.group(1)}"
    m = re.fullmatch(r"fio\.sgfs(?:-base)?\.\w+((?:\.qd\d+)?)", tool)
    if m:
        return f"fio.null{m.group(1)}"
    return None


def baseline_of(tool):
    """The baseline's row for a row of the sgfs under test, or None."""
    m = re.fullmatch(r"(fio\.)?sgfs\.(.+)", tool)
    return f"{m.group(1) or ''}sgfs-base.{m.group(2)}" if m else None


def reference(workload):
    if SECTION == "latency":
        return {"rand64k": "fio.sd.qd8", "randread": "fio.sd"}.get(workload, "sgm_dd")
    return "fio.sg" if workload in RAND else "sgm_dd"


def reference_label(workload):
    return {"fio.sg": "fio sg", "fio.sd": "fio sdX", "fio.sd.qd8": "sdX libaio qd8",
            "sgm_dd": "sgm_dd"}[reference(workload)]


def param_title(p):
    m = re.fullmatch(r"j(\d+)", p)
    if m:
        n = int(m.group(1))
        return f"{n} job" + ("s" if n != 1 else "")
    if p == "cp":
        return "cp (own size)"
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", p)
    if m:
        unit = {"": "B", "k": "KiB", "m": "MiB", "g": "GiB"}[m.group(2).lower()]
        return f"{m.group(1)} {unit}"
    return p


def size_bytes(p):
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", p)
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


def fnum(x):
    """Three significant digits, no exponent."""
    if x is None:
        return "–"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def parse_log(path):
    meta, runs, checks, stats = {}, [], [], {}
    complete = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line == "@@END":
                complete = True
            elif line.startswith("@@META|"):
                _, k, v = (line.split("|", 2) + [""])[:3]
                meta[k] = v
            elif line.startswith("@@RUN|"):
                f_ = line.split("|")
                if len(f_) < 14:
                    continue
                (_, w, tool, p, run, st, b, sec, us, sy, du, ds, ios) = f_[:13]
                note = "|".join(f_[13:])
                runs.append(dict(workload=w, tool=tool, param=p, run=int(run), status=st,
                                 bytes=int(b), seconds=float(sec), user=float(us),
                                 sys=float(sy), duser=float(du), dsys=float(ds),
                                 ios=int(ios), note=note))
            elif line.startswith("@@CHECK|"):
                f_ = line.split("|", 5)
                if len(f_) == 6:
                    checks.append(dict(workload=f_[1], tool=f_[2], param=f_[3], result=f_[4],
                                       note=f_[5]))
            elif line.startswith("@@S|"):
                f_ = line.split("|", 2)
                if len(f_) == 3:
                    stats.setdefault(f_[1], []).append(f_[2])
    return meta, runs, checks, stats, complete


def derive(r):
    """Per-run figures: MB/s, IOPS, CPU seconds (tool + daemon)."""
    ok = r["status"] == "ok" and r["seconds"] > 0
    cpu = r["user"] + r["sys"] + r["duser"] + r["dsys"]
    r["cpu"] = cpu
    r["mbps"] = r["bytes"] / r["seconds"] / 1e6 if ok else None
    r["iops"] = r["ios"] / r["seconds"] if ok and r["ios"] else None
    r["cpu_per_gib"] = cpu / (r["bytes"] / (1 << 30)) if ok and r["bytes"] else None
    r["cpu_us_per_io"] = cpu / r["ios"] * 1e6 if ok and r["ios"] else None
    return r


def write_csv(path, runs):
    cols = ["workload", "tool", "label", "param", "run", "status", "bytes", "seconds",
            "mb_per_s", "iops", "cpu_user_s", "cpu_sys_s", "daemon_user_s", "daemon_sys_s",
            "cpu_s_per_gib", "cpu_us_per_io", "note"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in runs:
            w.writerow([r["workload"], r["tool"], label(r["tool"]).replace("*", ""), r["param"],
                        r["run"], r["status"], r["bytes"], f"{r['seconds']:.3f}",
                        "" if r["mbps"] is None else f"{r['mbps']:.2f}",
                        "" if r["iops"] is None else f"{r['iops']:.0f}",
                        r["user"], r["sys"], r["duser"], r["dsys"],
                        "" if r["cpu_per_gib"] is None else f"{r['cpu_per_gib']:.3f}",
                        "" if r["cpu_us_per_io"] is None else f"{r['cpu_us_per_io']:.1f}",
                        r["note"]])


class Cell:
    def __init__(self, runs, rand):
        self.runs = runs
        self.ok = [r for r in runs if r["status"] == "ok"]
        self.failed = [r for r in runs if r["status"] != "ok"]
        key = "iops" if rand else "mbps"
        vals = [r[key] for r in self.ok]
        cpu = [r["cpu_us_per_io" if rand else "cpu_per_gib"] for r in self.ok]
        self.median = statistics.median(vals) if vals else None
        self.lo = min(vals) if vals else None
        self.hi = max(vals) if vals else None
        self.cpu = statistics.median(cpu) if cpu else None


def build_tables(runs, workloads_present):
    """{workload: (params, [(tool, {param: Cell})])} in the order tools first appear."""
    tables = {}
    for w in workloads_present:
        rand = w in RAND
        wr = [r for r in runs if r["workload"] == w]
        params, tools = [], []
        for r in wr:
            if r["param"] not in params:
                params.append(r["param"])
            if r["tool"] not in tools:
                tools.append(r["tool"])
        # transfer sizes in size order, then cp; job counts in numeric order
        params.sort(key=lambda p: (p == "cp", size_bytes(p) or 0,
                                   int(p[1:]) if re.fullmatch(r"j\d+", p) else 0))
        rows = []
        for t in tools:
            cells = {}
            for p in params:
                rr = [r for r in wr if r["tool"] == t and r["param"] == p]
                if rr:
                    cells[p] = Cell(rr, rand)
            rows.append((t, cells))
        tables[w] = (params, rows)
    return tables


class Notes:
    """Numbered footnotes; the same text from several cells becomes one note."""

    def __init__(self):
        self.items = []  # [text, [where...]]

    def add(self, text, where):
        for i, (t, places) in enumerate(self.items):
            if t == text:
                if where not in places:
                    places.append(where)
                return i + 1
        self.items.append([text, [where]])
        return len(self.items)

    def lines(self):
        return [f"{i}. {t} ({', '.join(places)})" for i, (t, places) in enumerate(self.items, 1)]


def render_table(w, params, rows, checks, notes, failures):
    rand = w in RAND
    ref = reference(w)
    unit = "IOPS" if rand else "MB/s"
    cpu_unit = "CPU µs/IO" if rand else "CPU s/GiB"
    ref_label = reference_label(w)
    head = ["tool"]
    for p in params:
        t = param_title(p)
        head += [f"{t}: {unit} (min–max)", f"{t}: {cpu_unit}",
                 f"{t}: ×{ref_label} / ×best / ×ceiling"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    best = {}
    refmed = {}
    for p in params:
        peers = [c[p].median for t, c in rows
                 if p in c and not is_sgfs(t) and not is_ceiling(t) and c[p].median is not None]
        best[p] = max(peers) if peers else None
        for t, c in rows:
            if t == ref and p in c:
                refmed[p] = c[p].median
    medians = {(t, p): c.median for t, cells in rows for p, c in cells.items()}
    for t, cells in rows:
        line = [label(t)]
        for p in params:
            c = cells.get(p)
            if c is None:
                line += ["", "", ""]
                continue
            expected = EXPECTED_FAILURES.get((w, t))
            bad_checks = [k for k in checks if k["workload"] == w and k["tool"] == t
                          and k["param"] == p and k["result"] != "ok"]
            mark = ""
            where = f"{w} {param_title(p)}"
            name = label(t).replace("*", "")
            if c.failed:
                note = c.failed[0]["note"] or "failed"
                text = f"{name}: {note}"
                if expected:
                    text += f" ({expected})"
                else:
                    failures.append(f"{name}, {where}: {note}")
                mark = f" [{notes.add(text, where)}]"
            for k in bad_checks:
                text = f"{name}: data check failed: {k['note']}"
                failures.append(f"{name}, {where}: data check failed: {k['note']}")
                mark += f" **data check failed** [{notes.add(text, where)}]"
            if c.median is None:
                line += [f"**failed**{mark}", "", ""]
                continue
            val = fnum(c.median)
            if len(c.ok) > 1:
                val += f" ({fnum(c.lo)}–{fnum(c.hi)})"
            if c.failed:
                val += f", {len(c.ok)}/{len(c.runs)} ok"
            val += mark
            r1 = fnum(c.median / refmed[p]) if refmed.get(p) else "–"
            r2 = fnum(c.median / best[p]) if best.get(p) else "–"
            ceiling = medians.get((ceiling_of(t), p))
            r3 = fnum(c.median / ceiling) if ceiling else "–"
            line += [val, fnum(c.cpu), f"{r1} / {r2} / {r3}"]
        out.append("| " + " | ".join(line) + " |")
    return out


def render_before_after(w, params, rows):
    """Rows of the sgfs under test against the same rows of the baseline: [] if none."""
    cells = dict(rows)
    out = []
    for t, c in rows:
        base = cells.get(baseline_of(t))
        if base is None:
            continue
        line = [label(t).replace("**", "").replace("sgfs ", "", 1)]
        for p in params:
            now, then = c.get(p), base.get(p)
            if now is None or then is None or now.median is None or then.median is None:
                line.append("–")
                continue
            ratio = now.median / then.median if then.median else None
            apart = len(now.ok) > 1 and len(then.ok) > 1 and (now.lo > then.hi or now.hi < then.lo)
            line.append(f"{fnum(ratio)}×{' *' if apart else ''} "
                        f"({fnum(now.median)} / {fnum(then.median)})")
        out.append("| " + " | ".join(line) + " |")
    if not out:
        return []
    head = ["row"] + [param_title(p) for p in params]
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + out


def cell(tables, w, tool, p):
    """The Cell of one row and column, or None."""
    if w not in tables:
        return None
    c = dict(tables[w][1]).get(tool, {}).get(p)
    return c if c is not None and c.median is not None else None


def figure(c, rand):
    unit, cpu_unit = ("IOPS", "µs/IO") if rand else ("MB/s", "s/GiB")
    return f"{fnum(c.median)} {unit} ({fnum(c.cpu)} CPU {cpu_unit})"


# The goals of issue 14 for the latency section: (workload, sgfs row pattern with {m} for
# the mode label, its column, reference row, its column, goal or None, what it compares).
LATENCY_GOALS = [
    ("read", "sgfs.{m}.dd", "1m", "sgm_dd", "1m", 2.0, "sequential read vs sgm_dd"),
    ("read", "sgfs.{m}.dd", "1m", "sgp_dd", "1m", 1.2, "sequential read vs sgp_dd thr=4"),
    ("read", "sgfs.{m}.dd", "1m", "sg_dd.dio", "1m", None, "sequential read vs sg_dd dio"),
    ("read", "sgfs.{m}.dd", "1m", "fio.sd.qd8", "1m", None, "sequential read vs /dev/sdX libaio depth 8"),
    ("read", "sgfs.{m}.dd", "1m", "null.dd", "1m", None, "sequential read vs the FUSE ceiling"),
    ("write", "sgfs.{m}.dd", "1m", "sg_dd.dio", "1m", 1.5, "sequential write (fsync) vs sg_dd dio"),
    ("write", "sgfs.{m}.dd", "1m", "sgp_dd", "1m", None, "sequential write vs sgp_dd thr=4"),
    ("write", "sgfs.{m}.dd", "1m", "fio.sd.qd8", "1m", None, "sequential write vs /dev/sdX libaio depth 8"),
    ("write", "sgfs.{m}.dd", "1m", "null.dd", "1m", None, "sequential write vs the FUSE ceiling"),
    ("rand64k", "fio.sgfs.{m}.qd8", "64k", "fio.sd.qd8", "64k", 0.8,
     "64 KiB random read, depth 8, vs /dev/sdX libaio depth 8"),
    ("rand64k", "fio.sgfs.{m}.qd8", "64k", "fio.null.qd8", "64k", None,
     "64 KiB random read, depth 8, vs the FUSE ceiling"),
    ("copy", "sgfs.{m}.cp", "cp", "sg_dd.dio", "1m", 1.5, "cp disk to disk vs sg_dd dio both sides"),
    ("copy", "sgfs.{m}.cp", "cp", "cp.dev", "cp", None, "cp disk to disk vs cp /dev/sda /dev/sdb"),
    ("copy", "sgfs.{m}.cp", "cp", "null.cp", "cp", None, "cp disk to disk vs the FUSE ceiling"),
    ("randread", "fio.sgfs.{m}", "j4", "fio.sgfs.{m}", "j1", 1.0, "4 KiB random read, 4 jobs vs 1 job"),
    ("randread", "fio.sgfs.{m}", "j1", "fio.sd", "j1", None, "4 KiB random read, 1 job, vs /dev/sdX"),
    ("randread", "fio.sgfs.{m}", "j4", "fio.sd", "j4", None, "4 KiB random read, 4 jobs, vs /dev/sdX"),
    ("randread", "fio.sgfs.{m}", "j1", "fio.null", "j1", None, "4 KiB random read, 1 job, vs the FUSE ceiling"),
]


def latency_goals(tables):
    """The goal ratios of the latency section, one table row each, for every sgfs mode."""
    modes = []
    for w in tables:
        for t, _ in tables[w][1]:
            m = re.fullmatch(r"(?:fio\.)?sgfs\.(\w+?)(?:\.(?:dd|cp|qd\d+))?", t)
            if m and m.group(1) not in modes:
                modes.append(m.group(1))
    out = ["| sgfs | comparison | sgfs figure | reference figure | ratio | goal |",
           "|---|---|---|---|---|---|"]
    for m in modes:
        for w, row, p, ref, rp, goal, what in LATENCY_GOALS:
            row, ref = row.format(m=m), ref.format(m=m)
            a, b = cell(tables, w, row, p), cell(tables, w, ref, rp)
            if a is None and b is None:
                continue
            rand = w in RAND
            ratio = a.median / b.median if a and b and b.median else None
            verdict = "–"
            if goal is not None:
                verdict = f"≥ {fnum(goal)}: " + ("–" if ratio is None else
                                                 "met" if ratio >= goal else "**not met**")
            out.append(f"| {sgfs_name(m)} | {what} ({param_title(p)} / {param_title(rp)}) | "
                       f"{figure(a, rand) if a else 'missing'} | "
                       f"{label(ref).replace('*', '')}: {figure(b, rand) if b else 'missing'} | "
                       f"{fnum(ratio)}× | {verdict} |")
    return out if len(out) > 2 else []


def ceiling_summary(tables):
    """delay=0: each sgfs cell against the ceiling's cell of the same size (goal 0.9×)."""
    total, below = 0, []
    for w in tables:
        params, rows = tables[w]
        cells = dict(rows)
        for t, c in rows:
            ceiling = cells.get(ceiling_of(t)) if is_sgfs(t) and "sgfs-base" not in t else None
            if ceiling is None:
                continue
            for p in params:
                if p in c and p in ceiling and c[p].median and ceiling[p].median:
                    total += 1
                    r = c[p].median / ceiling[p].median
                    if r < 0.9:
                        below.append(f"{label(t).replace('*', '')}, {w} {param_title(p)}: {fnum(r)}×")
    if total == 0:
        return []
    return [f"{total - len(below)} of {total} sgfs cells are at least 0.9× the FUSE ceiling "
            "of the same workload and size." + (" Below it: " + "; ".join(below) + "." if below else "")]


GNUPLOT_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aa3377",
                  "#4477aa", "#228833", "#ccbb44", "#66ccee", "#ee6677", "#bbbbbb"]


def run_gnuplot(gnuplot, script, svg_path):
    """Runs `script` through gnuplot; None once svg_path is written, else why not."""
    try:
        res = subprocess.run([gnuplot], input=script, text=True, capture_output=True, timeout=60)
    except OSError as e:
        return f"gnuplot failed: {e}"
    if res.returncode != 0:
        return f"gnuplot failed: {res.stderr.strip()[:200]}"
    if not os.path.exists(svg_path):
        return "gnuplot wrote no file"
    return None


def plot(gnuplot, w, params, rows, svg_path, title):
    sizes = [p for p in params if size_bytes(p)]
    if len(sizes) < 2:
        return "one transfer size only"
    blocks, plots = [], []
    for i, (t, cells) in enumerate(rows):
        pts = [(size_bytes(p), cells[p]) for p in sizes
               if p in cells and cells[p].median is not None]
        if not pts:
            continue
        name = f"$d{i}"
        blocks.append(f"{name} << EOD")
        blocks += [f"{x} {c.median:.3f} {c.lo:.3f} {c.hi:.3f}" for x, c in pts]
        blocks.append("EOD")
        color = GNUPLOT_COLORS[len(plots) % len(GNUPLOT_COLORS)]
        dt = 1 if is_sgfs(t) else 2
        lw = 2.5 if is_sgfs(t) else 1.5
        title_t = label(t).replace("*", "").replace("_", "\\_")
        plots.append(f"{name} using 1:2:3:4 with yerrorlines lw {lw} dt {dt} pt {7 + len(plots) % 6}"
                     f" ps 0.7 lc rgb '{color}' title '{title_t}'")
    if not plots:
        return "no successful runs"
    xt = ", ".join(f'"{param_title(p)}" {size_bytes(p)}' for p in sizes)
    script = "\n".join([
        "set terminal svg size 900,700 dynamic font 'sans,11'",
        f"set output '{svg_path}'",
        f"set title '{title}'",
        "set logscale x 2",
        f"set xtics ({xt})",
        f"set xrange [{size_bytes(sizes[0]) / 1.5}:{size_bytes(sizes[-1]) * 1.5}]",
        "set xlabel 'transfer size per command / read() / write()'",
        "set ylabel 'MB/s (median; bars: min-max)'",
        "set yrange [0:*]",
        "set grid ytics",
        "set key outside below center horizontal maxcols 2 Left reverse spacing 1.1 font ',10'",
        *blocks,
        "plot " + ", \\\n  ".join(plots),
    ])
    return run_gnuplot(gnuplot, script, svg_path)


MULTI_COMMAND_TOOLS = re.compile(r"sgp_dd$|fio\.(sd|sg)\.qd\d+$")


def latency_bar(tool):
    """Bar colour of a latency row: sgfs, the ceiling, several commands in flight, or one."""
    if is_sgfs(tool):
        return "#d62728"
    if is_ceiling(tool):
        return "#7f7f7f"
    return "#2ca02c" if MULTI_COMMAND_TOOLS.match(tool) else "#1f77b4"


def latency_plot(gnuplot, tables, svg_path, title):
    """The latency section's bars: MB/s of every sequential row (1 MiB, or cp's own size)
    and 64 KiB random read IOPS, median with min-max. None, or why there is no plot."""
    panels = []
    for workloads, unit in ((SEQ, "MB/s"), (["rand64k"], "IOPS")):
        bars = []
        for w in workloads:
            if w not in tables:
                continue
            for t, cells in tables[w][1]:
                c = next((cells[p] for p in ("1m", "cp", "64k")
                          if p in cells and cells[p].median is not None), None)
                if c is not None:
                    name = label(t).replace("*", "").replace("_", "\\_").replace("'", "")
                    bars.append((f"{w}: {name}", c, latency_bar(t)))
        if bars:
            panels.append((unit, bars))
    if not panels:
        return "no successful runs"
    # Each panel as tall as its bars, plus room for its axis label.
    heights = [len(b) + 3 for _, b in panels]
    total = sum(heights) + 1
    script = [f"set terminal svg size 1000,{22 * total} dynamic font 'sans,10'",
              f"set output '{svg_path}'",
              f"set multiplot title '{title}. Red: sgfs; blue: one command in flight; "
              "green: several; grey: the FUSE ceiling'"]
    top = 1 - 1 / total
    for (unit, bars), height in zip(panels, heights):
        n = len(bars)
        data = [f"{n - 1 - i} {c.median:.3f} {c.lo:.3f} {c.hi:.3f} 0x{colour[1:]}"
                for i, (_, c, colour) in enumerate(bars)]
        tics = ", ".join(f"'{name}' {n - 1 - i}" for i, (name, _, _) in enumerate(bars))
        script += [
            f"set origin 0,{top - height / total:.4f}",
            f"set size 1,{height / total:.4f}",
            "set lmargin 46",
            "$bars << EOD", *data, "EOD",
            f"set ytics ({tics}) nomirror",
            f"set yrange [-0.7:{n - 0.3}]",
            "set xrange [0:*]",
            f"set xlabel '{unit} (median; black: min-max)'",
            "set grid xtics",
            "set style fill solid 0.8 noborder",
            "unset key",
            "plot $bars using (0):1:(0):2:($1-0.38):($1+0.38):5 with boxxyerror lc rgb variable, "
            "$bars using 2:1:3:4 with xerrorbars pt 0 lc rgb '#000000'",
            "undefine $bars",
        ]
        top -= height / total
    script.append("unset multiplot")
    return run_gnuplot(gnuplot, "\n".join(script), svg_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--log", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--stem", required=True)
    ap.add_argument("--host-info", help="file of KEY=VALUE lines from bench/run")
    ap.add_argument("--gnuplot", default="", help="gnuplot binary; empty: no plots")
    ap.add_argument("--plot-note", default="", help="why there is no plot")
    args = ap.parse_args()

    meta, runs, checks, stats, complete = parse_log(args.log)
    global SECTION
    SECTION = meta.get("section", "delay0")
    latency = SECTION == "latency"
    VARIANTS.update({k[len("variant."):]: v for k, v in meta.items() if k.startswith("variant.")})
    host = {}
    if args.host_info and os.path.exists(args.host_info):
        with open(args.host_info, encoding="utf-8") as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    host[k] = v
    if not runs:
        print("report.py: no measurements in the guest output", file=sys.stderr)
        return 2
    for r in runs:
        derive(r)
    os.makedirs(args.out_dir, exist_ok=True)
    stem = os.path.join(args.out_dir, args.stem)
    write_csv(stem + ".csv", runs)

    present = [w for w in SEQ + RAND if any(r["workload"] == w for r in runs)]
    tables = build_tables(runs, present)
    params = dict(kv.split("=", 1) for kv in meta.get("params", "").split() if "=" in kv)
    mb = params.get("size_mb", "?")
    rt = params.get("fio_runtime", "?")

    # plots
    plot_files, plot_notes = {}, {}
    if latency:
        svg = os.path.join(args.out_dir, "latest-latency.svg")
        ndelay_ms = int(meta.get("ndelay_ns", "0") or 0) / 1e6
        why = (args.plot_note or "no gnuplot") if not args.gnuplot else latency_plot(
            args.gnuplot, tables, svg, f"{ndelay_ms:g} ms per command, {mb} MiB per run")
        if why:
            plot_notes["latency"] = why
        else:
            plot_files["latency"] = svg
    for w in SEQ if not latency else []:
        if w not in tables:
            continue
        svg = os.path.join(args.out_dir, f"latest-{w}.svg")
        if not args.gnuplot:
            plot_notes[w] = args.plot_note or "no gnuplot"
            continue
        why = plot(args.gnuplot, w, *tables[w], svg,
                   f"{TITLES[w]}, {mb} MiB per run (sgfs: solid lines)")
        if why:
            plot_notes[w] = why
        else:
            plot_files[w] = svg

    notes, failures = Notes(), []
    what = (f"latency section (scsi_debug ndelay={meta.get('ndelay_ns', '?')} ns per command)"
            if latency else "benchmark")
    md = [f"# sgfs {what}, {host.get('date', '?')}, commit {host.get('commit', '?')}", ""]
    md += [f"Command: `{host.get('command', '?')}`", ""]
    kv = [
        ("commit", host.get("commit_info", host.get("commit", "?"))),
        ("sgfs", f"{meta.get('sgfs', '?')} ({host.get('sgfs_binary', '?')})"),
        ("FUSE ceiling", meta.get("nullfs", "?")),
        ("host", host.get("host", "?")),
        ("VM", f"{host.get('qemu', '?')}, accelerator {host.get('accel', '?')}, "
               f"{meta.get('guest_cpus', '?')} vCPUs, {meta.get('guest_mem_mb', '?')} MiB; "
               f"guest kernel {meta.get('kernel', '?')}"),
        ("disks", f"scsi_debug {meta.get('scsi_debug', '?')} (RAM disks), "
                  f"{meta.get('disks', '?')}, sector {meta.get('sector', '?')} B, "
                  f"max_sectors_kb {meta.get('max_sectors_kb', '?')}; sg driver "
                  f"{meta.get('sg_version', '?')}, allow_dio={meta.get('allow_dio', '?')}"),
        *([("baseline", f"{meta.get('sgfs-base', '?')} ({host['baseline']})")]
          if "baseline" in host else []),
        ("tools", "; ".join(meta.get(k, "?") for k in ("sg3_utils", "fio", "qsd", "coreutils"))),
        ("parameters", meta.get("params", "?")),
        ("duration", f"{host.get('duration', '?')} in all (boot included); "
                     f"{meta.get('guest_seconds', '?')} s of measuring in the guest"),
        ("host load", host.get("load", "?")),
        *([("note", host["note"])] if host.get("note") else []),
    ]
    md += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in kv] + [""]
    md += [
        "How to read: MB/s is 10^6 bytes per second; each cell is the median of the runs "
        "with (min–max). CPU is user+sys seconds per GiB moved (random IO: µs per IO) of "
        "the tool process and its children, plus, for FUSE rows, the daemon (sgfs, "
        "qemu-storage-daemon, nullfs) from /proc/PID/stat; kernel work done in other contexts "
        "(kworkers, interrupts) is not counted. fio rows use fio's own runtime and per-job "
        "CPU. ×sgm_dd (×fio sg for random IO; in the latency section ×/dev/sdX with fio for "
        "random IO) is the median over that row's, ×best over the best median of the rows "
        "that are neither sgfs nor the ceiling at the same size, ×ceiling (sgfs rows) over "
        "the FUSE ceiling's row of the same command and size. Every run starts with "
        "the page cache dropped. The guest is emulated (QEMU TCG when the accelerator says "
        "tcg): absolute numbers are far below real hardware and the host's other load "
        "shows up as spread; compare rows within one report.", ""]
    if not complete:
        failures.append("the guest did not finish the benchmark (no @@END): the tables are incomplete")
        md += ["**The guest did not finish: the tables below are incomplete.**", ""]
    if latency:
        md += [
            f"Every SCSI command takes {int(meta.get('ndelay_ns', '0') or 0) / 1e6:g} ms in the "
            "device (scsi_debug ndelay, counted from the command's arrival, so the store's "
            "memcpy is inside it), and overlapping commands overlap their delays: a tool that "
            "keeps one command in flight leaves the device idle while it works, one that keeps "
            "several does not. Rows: the tools that keep one command in flight (sg_dd dio, "
            "sgm_dd, dd O_DIRECT, cp), those that keep several (sgp_dd thr=4, fio at depth 8), "
            "sgfs, and the FUSE ceiling.", ""]
        goals = latency_goals(tables)
        if goals:
            md += ["## Goal ratios (issue 14)", "",
                   "Medians of this run; CPU beside each figure (tool + FUSE daemon).", ""]
            md += goals + [""]
        if "latency" in plot_files:
            # only in latest-latency.md: the plot is overwritten by the next run
            md += [("img", f"![MB/s and IOPS by tool]({os.path.basename(plot_files['latency'])})"), ""]
    else:
        summary = ceiling_summary(tables)
        if summary:
            md += ["## sgfs against the FUSE ceiling", ""] + summary + [""]
    descriptions = LATENCY_DESCRIPTIONS if latency else DESCRIPTIONS
    for w in present:
        text = descriptions.get(w, DESCRIPTIONS.get(w, "")).format(mb=mb, rt=rt)
        if any(is_ceiling(t) for t, _ in tables[w][1]):
            text += CEILING_NOTE
        md += [f"## {TITLES[w]}", "", text, ""]
        md += render_table(w, *tables[w], checks, notes, failures)
        md.append("")
        if w in plot_files:
            # only in latest.md: the plots are latest-*.svg, overwritten by the next run
            md += [("img", f"![{TITLES[w]}]({os.path.basename(plot_files[w])})"), ""]
    before_after = []
    for w in present:
        table = render_before_after(w, *tables[w])
        if table:
            before_after += [f"### {TITLES[w]}", ""] + table + [""]
    if before_after:
        md += ["## Before/after: this build against the baseline", "",
               f"Baseline: {host.get('baseline', '?')}. Each sgfs row ran with both binaries "
               "back to back in the same guest boot (rows sgfs-base in the tables above). A "
               "cell is this build's median over the baseline's (×), then the two medians "
               "(MB/s; random IO: IOPS). `*`: the min–max ranges of the two do not overlap, "
               "a difference beyond this run's spread (never marked with a single run).", ""]
        md += before_after
    ok_checks = [k for k in checks if k["result"] == "ok"]
    if "checks=0" in meta.get("params", ""):
        md += ["## Data checks", "", "Off for this run (--no-check, or --quick).", ""]
    else:
        md += ["## Data checks", "",
               f"{len(ok_checks)} of {len(checks)} untimed checks passed (first run only: "
               "after every sgfs and qemu-storage-daemon run and after the first size of "
               "each native writer or copier, the target is compared with its source; sgfs "
               "and qemu-storage-daemon reads are read again and compared with /dev/sda; "
               "before a checked write, 64 KiB every 16 MiB of the target are zeroed).", ""]
    if notes.items:
        md += ["## Notes and failures", ""]
        md += notes.lines() + [""]
    if plot_notes:
        md += ["Plots not drawn: " + "; ".join(f"{w}: {n}" for w, n in plot_notes.items()), ""]
    if stats:
        md += ["## sgfs .stats", "",
               "Each mode's counters at the end of the first run (cumulative over its read, "
               "write, copy and random IO workloads): the commands done per transfer mode, "
               "the bytes copied per path (read, write, copy: by sgfs in user space, by the sg driver, or not at all), the read-ahead figures and, where sgfs counts them, the commands in flight.", ""]
        for name, lines in stats.items():
            keep = [ln for ln in lines if re.match(
                r"\s*(device|io_mode|max_transfer_bytes|reserve_granted|queue_depth|"
                r"(indirect|direct|mmap)\.(done|fallback)_commands|retries|"
                r"(read|write|copy)\.(user|sg|zero)_copy_bytes|readahead(_hit)?_bytes|"
                r"in_flight\.\w+)\b", ln)]
            keep = [ln for ln in keep if not re.search(r"\s0$", ln) or "fallback" not in ln]
            md += [f"<details><summary>{name}</summary>", "", "```"] + keep + ["```", "</details>", ""]
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(x for x in md if isinstance(x, str)))
    latest = "latest-latency.md" if latency else "latest.md"
    with open(os.path.join(args.out_dir, latest), "w", encoding="utf-8") as f:
        f.write("\n".join(x if isinstance(x, str) else x[1] for x in md))

    if failures:
        print("report.py: FAILED (workloads that could not run or gave wrong data):", file=sys.stderr)
        for t in failures:
            print(f"  - {t}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""dpdk-millipede(1) against the binary, so the two cannot drift.

usage: man_page_test.py BINARY MANPAGE

- Every option (`--x`) that `dpdk-millipede -- tx --help` lists has an entry
  in the man page's "TX AND RX OPTIONS", and every entry there is in the help;
  the same for `-- tap --help` and "TAP OPTIONS".
- viamillipede's words in `-- tx --help` and the entries of "TX AND RX WORDS"
  are the same set.
- Every "(default X)" that the help gives for an option appears in that
  option's man entry.
- Every mode of the top-level `--help` is in DESCRIPTION, and the page has
  --help and --version.
- EXIT STATUS lists 0, 1 and 2, and the binary exits with them where the page
  says: 0 for --help/--version, 2 for usage errors, 1 when EAL initialisation
  fails (an unknown EAL option: EAL stops while parsing its arguments, before
  it touches hugepages or creates runtime files).
- groff formats the page without a warning.
"""
import re
import subprocess
import sys

OPT = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw)


def help_text(binary, *mode):
    args = [binary, "--", *mode, "--help"] if mode else [binary, "--help"]
    p = run(args)
    if p.returncode != 0 or not p.stdout.strip():
        sys.exit(f"FAIL: {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def roff_text(s):
    """Roff source line -> plain text (fonts, escapes and macro names gone)."""
    s = re.sub(r"\\f[BIRP]", "", s)
    s = s.replace("\\-", "-").replace("\\e", "\\").replace('"', "")
    s = re.sub(r"^\.(BR|BI|IR|RB|RI|IB|B|I)\s+", "", s)
    return s


def man_sections(path):
    """{section: [(tag, body), ...]} for the .TP entries, and {section: text}."""
    entries, texts = {}, {}
    section = None
    lines = open(path, encoding="utf-8").read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".SH "):
            section = line[4:].strip().strip('"')
            entries[section] = []
            texts[section] = ""
        elif section and line.startswith(".TP"):
            tag = roff_text(lines[i + 1])
            body = []
            i += 2
            while i < len(lines) and not lines[i].startswith((".TP", ".SH", ".PP")):
                body.append(roff_text(lines[i]))
                i += 1
            entries[section].append((tag, " ".join(body)))
            texts[section] += tag + " " + " ".join(body) + "\n"
            continue
        elif section and not line.startswith('.\\"'):
            texts[section] += roff_text(line) + "\n"
        i += 1
    return entries, texts


def help_entries(text):
    """{option: description} from a --help text: an entry starts with a line
    whose first word is an option and runs while the next lines are indented
    deeper than that option."""
    out = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s+)(--[a-z][a-z0-9-]*)", line)
        if not m:
            continue
        indent = len(m.group(1))
        desc = [line]
        for nxt in lines[i + 1:]:
            if len(nxt) - len(nxt.lstrip()) <= indent or not nxt.strip():
                break
            desc.append(nxt)
        joined = " ".join(d.strip() for d in desc)
        head = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]  # the options, not the description
        for opt in OPT.findall(head):
            out.setdefault(opt, "")
            out[opt] += " " + joined
    return out


def defaults(desc):
    """The values of "(default X)" / "default X" in a help description."""
    vals = re.findall(r"default (?:the )?([0-9][0-9A-Za-z.]*)", desc)
    return {v.rstrip(".") for v in vals}


failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def compare_options(label, help_txt, man_entries, eal_opts):
    # Options the help mentions in passing that belong to EAL (--vdev) are
    # documented under EAL OPTIONS; --help itself under each mode.
    help_opts = set(OPT.findall(help_txt)) - eal_opts - {"--help"}
    man_opts = set()
    for tag, _ in man_entries:
        man_opts |= set(OPT.findall(tag)) - {"--help"}
    for o in sorted(help_opts - man_opts):
        check(False, f"{label}: {o} is in --help but has no entry in the man page")
    for o in sorted(man_opts - help_opts):
        check(False, f"{label}: the man page documents {o}, which --help does not list")
    # Defaults: what the help says is the default appears in the man entry.
    by_opt = help_entries(help_txt)
    for opt, desc in by_opt.items():
        man_body = " ".join(tag + " " + body for tag, body in man_entries if opt in OPT.findall(tag))
        for v in defaults(desc):
            check(v in man_body, f"{label}: --help gives {opt} the default {v}; its man entry does not say so")
    return len(help_opts)


def words_of(tx_help):
    block = tx_help.split("viamillipede's words", 1)[1].split("options:", 1)[0]
    words = set(re.findall(r"^    ([a-z]+)\b", block, re.M))
    # "charmode, delayus N, terminate PORT, initiate HOST PORT: not implemented"
    m = re.search(r"^    (charmode.*?):", block, re.M)
    if m:
        words |= {w.split()[0] for w in m.group(1).split(",")}
    return words


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    binary, page = sys.argv[1:]
    entries, texts = man_sections(page)
    for s in ("SYNOPSIS", "DESCRIPTION", "EAL OPTIONS", "TX AND RX WORDS", "TX AND RX OPTIONS", "TAP OPTIONS",
              "EXIT STATUS"):
        if s not in entries:
            sys.exit(f"FAIL: the man page has no section {s}")

    top = help_text(binary)
    tx = help_text(binary, "tx")
    rx = help_text(binary, "rx")
    tap = help_text(binary, "tap")
    check(tx == rx, "tx --help and rx --help differ: the man page documents them as one list")

    eal_opts = {o for tag, _ in entries["EAL OPTIONS"] for o in OPT.findall(tag)}
    n_tx = compare_options("tx/rx", tx.split("viamillipede's words", 1)[1].split("options:", 1)[1],
                           entries["TX AND RX OPTIONS"], eal_opts)
    n_tap = compare_options("tap", tap, entries["TAP OPTIONS"], eal_opts)

    help_words = words_of(tx)
    # An entry's tag starts with its word; "charmode, delayus N, ..." names several.
    man_words = {part.split()[0] for tag, _ in entries["TX AND RX WORDS"] for part in tag.split(",") if part.strip()}
    for w in sorted(help_words - man_words):
        check(False, f"tx/rx: the word {w} is in --help but not in TX AND RX WORDS")
    for w in sorted(man_words - help_words):
        check(False, f"tx/rx: TX AND RX WORDS documents {w}, which --help does not list")

    modes = set(re.findall(r"^  ([a-z]+)\s{2,}", top.split("modes:", 1)[1].split("examples:", 1)[0], re.M))
    check(modes == {"tx", "rx", "tap"}, f"top-level --help lists modes {sorted(modes)}")
    man_modes = {tag.split()[0] for tag, _ in entries["DESCRIPTION"]}
    check(modes <= man_modes, f"DESCRIPTION has modes {sorted(man_modes)}, --help {sorted(modes)}")
    for line in top.splitlines():
        if line.startswith("  --"):  # the program's own options, not the examples'
            for o in OPT.findall(line):
                check(o in texts["SYNOPSIS"], f"top-level --help's {o} is not in SYNOPSIS")

    # Exit statuses: the page lists them, the binary keeps to them.
    statuses = {tag.split()[0] for tag, _ in entries["EXIT STATUS"]}
    check(statuses == {"0", "1", "2"}, f"EXIT STATUS lists {sorted(statuses)}, not 0, 1, 2")
    cases = [
        ([binary, "--version"], 0),
        ([binary, "--", "tap", "--help"], 0),
        ([binary], 2),
        ([binary, "--", "nosuchmode"], 2),
        ([binary, "--", "tap", "--no-such-option"], 2),
        ([binary, "--", "tap", "--workers", "0"], 2),
        ([binary, "--", "tx", "10.0.0.2"], 2),
        ([binary, "--", "rx", "8834", "threads", "4", "--ip", "0=10.0.0.2/24"], 2),
        ([binary, "--no-such-eal-option", "--", "tap"], 1),
        ([binary, "--no-such-eal-option", "--", "rx", "8834", "--ip", "0=10.0.0.2/24"], 1),
    ]
    for cmd, want in cases:
        p = run(cmd)
        check(p.returncode == want,
              f"`{' '.join(cmd[1:])}` exited {p.returncode}, the man page says {want}: {p.stderr.strip()[-200:]}")
        if want == 2:
            lines = [l for l in p.stderr.splitlines() if l.strip()]
            check(len(lines) == 1, f"`{' '.join(cmd[1:])}`: {len(lines)} lines on stderr, the page promises one")

    # The page formats cleanly (no unknown macros, no lines it cannot break).
    g = run(["groff", "-man", "-ww", "-Tutf8", "-z", page])
    check(g.returncode == 0 and not g.stderr.strip(), f"groff warns: {g.stderr.strip()}")

    for f in failures:
        print("FAIL:", f)
    if failures:
        sys.exit(1)
    print(f"man page agrees with --help: {n_tx} tx/rx options, {len(help_words)} words, "
          f"{n_tap} tap options, exit statuses 0/1/2 ({len(cases)} cases)")


main()

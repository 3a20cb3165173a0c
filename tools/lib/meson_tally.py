#!/usr/bin/env python3
"""Tallies one `meson test` run for tools/test.sh.

    meson_tally.py limit BUILD_DIR MULTIPLIER SUITE...
        prints "SECONDS NTESTS": the outer limit for running those suites,
        derived from each test's own timeout (meson introspect --tests).
    meson_tally.py check-allowed ALLOWED_SKIPS
        exit 1, with a message per bad line, when the file is malformed.
    meson_tally.py tally BUILD_DIR LABEL MESON_STATUS ALLOWED_SKIPS SUITE...
        reads BUILD_DIR/meson-logs/testlog.json and prints one line
        "PASSED FAILED SKIPPED" on stdout, and what went wrong on stderr.

Every test of the selected suites lands in exactly one of the three counts:
- passed:  meson result OK (or EXPECTEDFAIL), and no GoogleTest case inside
           it was skipped;
- skipped: meson result SKIP (exit 77), or OK with skipped GoogleTest cases,
           and the test is listed in ALLOWED_SKIPS;
- failed:  anything else: FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS, INTERRUPT,
           a skip not in ALLOWED_SKIPS, and a test that never ran (absent
           from testlog.json: meson was killed by the outer limit, or ended
           early). When meson's exit status is not 0 but no test failed,
           that counts as one more failure: something went wrong that the
           log does not show.
A skip is printed with its reason (the test's "SKIP: ..." line) either way.
"""
import json
import os
import re
import subprocess
import sys

# Per-test allowance on top of the test's own limit: meson's start-up of the
# test and its SIGTERM/SIGKILL sequence after a timeout.
PER_TEST_SLACK_S = 10
# Once per run: meson's own start-up and the final log writing.
RUN_SLACK_S = 60


def short_suite(s):
    return s.split(":", 1)[-1]


def selected_tests(build_dir, suites):
    """[(name, timeout_s)] of the tests in any of `suites`, from introspection."""
    tests = json.loads(subprocess.run(["meson", "introspect", "--tests", build_dir], check=True,
                                      capture_output=True, text=True).stdout)
    want = set(suites)
    return [(t["name"], t.get("timeout") or 0) for t in tests if want & {short_suite(s) for s in t["suite"]}]


def cmd_limit(build_dir, multiplier, suites):
    tests = selected_tests(build_dir, suites)
    total = 0.0
    for name, timeout in tests:
        if timeout <= 0:
            # meson runs such a test without a limit; so would the sum.
            print(f"test {name} has no timeout: every test() needs one", file=sys.stderr)
            return 1
        total += timeout * multiplier + PER_TEST_SLACK_S
    print(int(total) + RUN_SLACK_S, len(tests))
    return 0


def read_allowed(path):
    """{test name: reason}, and a list of format errors."""
    allowed, errors = {}, []
    if not os.path.exists(path):
        return allowed, [f"{path}: missing (it may be empty, but it must exist)"]
    with open(path) as f:
        for no, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            if len(parts) < 2 or len(parts[1].strip()) < 10:
                errors.append(f"{path}:{no}: '{line}': a test name and the reason a user would accept, "
                              "in words (at least 10 characters)")
                continue
            if parts[0] in allowed:
                errors.append(f"{path}:{no}: {parts[0]} listed twice")
            allowed[parts[0]] = parts[1].strip()
    return allowed, errors


def cmd_check_allowed(path):
    _, errors = read_allowed(path)
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


GTEST_SKIPPED = re.compile(r"^\[  SKIPPED \] (\S+\.\S+) \(\d+ ms\)$", re.M)


def skip_reason(out):
    """The line a test printed to say why it skipped."""
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    for l in lines:
        if re.match(r"^SKIP\b", l):
            return l
    for l in lines:
        if "skip" in l.lower() and not l.startswith("[  SKIPPED ]"):
            return l
    return lines[-1] if lines else "(the test printed no reason)"


def gtest_skips(out):
    """GoogleTest cases skipped inside a passing binary, with their reasons
    (GTEST_SKIP() << reason prints "Skipped" and the reason before the
    case's "[  SKIPPED ]" line)."""
    found = []
    for m in GTEST_SKIPPED.finditer(out):
        before = out[:m.start()].splitlines()
        reason = ""
        for l in reversed(before[-6:]):
            if l.startswith("[ RUN"):
                break
            if l.strip() and not l.rstrip().endswith("Skipped"):
                reason = l.strip()
        found.append((m.group(1), reason or "(no reason given)"))
    return found


def cmd_tally(build_dir, label, meson_status, allowed_path, suites):
    allowed, _ = read_allowed(allowed_path)  # its errors: check-allowed, once per run of test.sh
    expected = [name for name, _ in selected_tests(build_dir, suites)]
    log = os.path.join(build_dir, "meson-logs", "testlog.json")
    ran = {}
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    t = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill
                ran[t["name"].rsplit(" / ", 1)[-1]] = t
    passed = failed = skipped = 0
    for name in expected:
        t = ran.get(name)
        if t is None:
            print(f"{label}: {name} NEVER RAN (meson stopped before it: outer time limit or an early end)",
                  file=sys.stderr)
            failed += 1
            continue
        result = t["result"]
        out = (t.get("stdout") or "") + (t.get("stderr") or "")  # stderr is separate when meson splits it
        skips = []
        if result == "SKIP":
            skips = [("", skip_reason(out))]
        elif result in ("OK", "EXPECTEDFAIL"):
            skips = gtest_skips(out)
            if not skips:
                passed += 1
                continue
        else:
            print(f"{label}: {name} {result} after {t.get('duration', 0):.0f} s", file=sys.stderr)
            failed += 1
            continue
        what = ", ".join(f"{case}: {why}" if case else why for case, why in skips)
        if name in allowed:
            print(f"{label}: {name} SKIPPED (allowed: {allowed[name]}): {what}", file=sys.stderr)
            skipped += 1
        else:
            print(f"{label}: {name} SKIPPED, and it is not in {os.path.basename(allowed_path)}, "
                  f"so it counts as failed: {what}", file=sys.stderr)
            failed += 1
    extra = sorted(set(ran) - set(expected))
    if extra:
        print(f"{label}: tests in the log that were not selected (ignored): {', '.join(extra)}", file=sys.stderr)
    if meson_status != 0 and failed == 0:
        print(f"{label}: meson test exited with status {meson_status} although no test failed", file=sys.stderr)
        failed += 1
    print(passed, failed, skipped)
    return 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "limit":
        return cmd_limit(argv[2], float(argv[3]), argv[4:])
    if len(argv) == 3 and argv[1] == "check-allowed":
        return cmd_check_allowed(argv[2])
    if len(argv) >= 6 and argv[1] == "tally":
        return cmd_tally(argv[2], argv[3], int(argv[4]), argv[5], argv[6:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

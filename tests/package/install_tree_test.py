#!/usr/bin/env python3
"""`meson install` into a scratch DESTDIR puts every installed file in place.

usage: install_tree_test.py BUILD_DIR SOURCE_DIR DESTDIR

Checks, under the build's prefix: the binary (and that it runs), the man
page, both systemd units with ExecStart pointing at the installed binary and
the example configs they name, and drivers-config/ under
share/dpdk-millipede/ with every file of the source's drivers-config/ when
the source tree has one.
"""
import json
import os
import re
import shutil
import subprocess
import sys


def main():
    build, source, dest = sys.argv[1:]
    shutil.rmtree(dest, ignore_errors=True)
    p = subprocess.run(["meson", "install", "-C", build, "--no-rebuild", "--destdir", dest],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit(f"FAIL: meson install exited {p.returncode}: {p.stderr.strip()[-500:]}")
    opts = {o["name"]: o["value"] for o in json.loads(
        subprocess.run(["meson", "introspect", "--buildoptions", build], capture_output=True, text=True,
                       timeout=60, check=True).stdout)}
    prefix = opts["prefix"]
    unitdir = opts["systemdunitdir"] or os.path.join(prefix, "lib/systemd/system")

    def at(*parts):
        return os.path.join(dest, *(x.lstrip("/") for x in parts))

    failures = []
    binary = at(prefix, opts["bindir"], "dpdk-millipede")
    man = at(prefix, opts["mandir"], "man1", "dpdk-millipede.1")
    examples = os.path.join(prefix, opts["datadir"], "doc", "dpdk-millipede", "examples")
    for f in (binary, man, at(examples, "tap.conf"), at(examples, "rx.conf")):
        if not os.path.isfile(f):
            failures.append(f"not installed: {os.path.relpath(f, dest)}")
    if os.path.isfile(binary):
        r = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        if r.returncode != 0 or not r.stdout.startswith("dpdk-millipede "):
            failures.append(f"the installed binary does not run: {r.returncode} {r.stderr.strip()}")
    for unit in ("dpdk-millipede-tap@.service", "dpdk-millipede-rx@.service"):
        path = at(unitdir, unit)
        if not os.path.isfile(path):
            failures.append(f"not installed: {unit} in {unitdir}")
            continue
        # Continuation lines joined: rx's ExecStart spans several.
        text = open(path).read().replace("\\\n", " ")
        if "@" + "BINDIR@" in text or "@EXAMPLESDIR@" in text:
            failures.append(f"{unit}: a placeholder was not substituted")
        bin_path = os.path.join(prefix, opts["bindir"], "dpdk-millipede")
        if not re.search(r"^ExecStart=.*" + re.escape(bin_path) + r" +--file-prefix millipede-%i ", text, re.M):
            failures.append(f"{unit}: ExecStart does not run {bin_path} with its own --file-prefix")
        if examples not in text:
            failures.append(f"{unit}: does not point to the examples in {examples}")
        for key in ("Requires=dpdk.service", "After=dpdk.service", "EnvironmentFile=/etc/dpdk-millipede/%i.conf"):
            if key not in text:
                failures.append(f"{unit}: no {key}")
    tap_unit = at(unitdir, "dpdk-millipede-tap@.service")
    if os.path.isfile(tap_unit) and "Restart=on-failure" not in open(tap_unit).read():
        failures.append("the tap unit does not restart on failure")
    if not os.path.isdir(at("/var/log/dpdk-millipede")):
        failures.append("/var/log/dpdk-millipede is not created (the tap unit's StandardOutput=append: needs it)")
    src_profiles = os.path.join(source, "drivers-config")
    inst_profiles = at(prefix, opts["datadir"], "dpdk-millipede", "drivers-config")
    n = 0
    if os.path.isdir(src_profiles):
        for dirpath, _, files in os.walk(src_profiles):
            for f in files:
                rel = os.path.relpath(os.path.join(dirpath, f), src_profiles)
                n += 1
                if not os.path.isfile(os.path.join(inst_profiles, rel)):
                    failures.append(f"drivers-config/{rel} is not installed")
    elif os.path.exists(inst_profiles):
        failures.append("drivers-config/ installed although the source has none")
    for f in failures:
        print("FAIL:", f)
    if failures:
        sys.exit(1)
    shutil.rmtree(dest)
    print(f"meson install: binary, man page, 2 units, 2 example configs, {n} drivers-config files "
          f"under prefix {prefix}")


main()

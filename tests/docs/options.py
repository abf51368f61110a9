#!/usr/bin/env python3
"""The man pages and the programs' --help agree on the options.

For each program: every long option (--name) and every -o mount option that
--help lists appears in the man page's OPTIONS section, and every option the
man page's OPTIONS section documents appears in --help.  noxctl: the
commands listed by --help each have a section in the man page too.
"""
import os
import re
import subprocess
import sys

build = os.environ["NOX_BUILD_ROOT"]
src = os.environ["NOX_SOURCE_ROOT"]
fails = 0
checks = 0


def check(cond, what):
    global fails, checks
    checks += 1
    if not cond:
        fails += 1
        print("FAIL:", what)


def help_text(prog, *args):
    p = subprocess.run([prog, *args, "--help"], capture_output=True, text=True, timeout=20)
    return p.stdout + p.stderr


def section(scd, name):
    """Text of '# NAME' up to the next '# ' heading."""
    m = re.search(r"^# " + name + r"\b.*?$(.*?)(?=^# |\Z)", scd, re.S | re.M)
    return m.group(1) if m else ""


def long_opts(text):
    return set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", text))


def mount_opts(text):
    return set(re.findall(r"-o ([a-z0-9_]+)", text))


def man_mount_opts(text):
    return set(re.findall(r"^\t\*([a-z0-9_]+)(?:=|\*)", text, re.M)) | \
        set(re.findall(r", \*([a-z0-9_]+)[=*]", text))


# noxd ------------------------------------------------------------------------
h = help_text(os.path.join(build, "tools/noxd/noxd"))
m = section(open(os.path.join(src, "docs/noxd.8.scd")).read(), "OPTIONS")
for o in sorted(long_opts(h)):
    check("--" + o in m, f"noxd --help has --{o}, noxd.8 OPTIONS does not")
for o in sorted(long_opts(m)):
    check("--" + o in h, f"noxd.8 documents --{o}, noxd --help does not")

# noxctl ----------------------------------------------------------------------
noxctl = os.path.join(build, "tools/noxctl/noxctl")
h = help_text(noxctl)
man = open(os.path.join(src, "docs/noxctl.1.scd")).read()
cmds = re.findall(r"^  ([a-z]+)\b", h.split("Commands:")[1].split("Global options:")[0], re.M)
check(len(cmds) >= 10, f"noxctl --help lists commands ({cmds})")
for c in cmds:
    check(re.search(r"^\*?" + c + r"\*", man, re.M) is not None or f"*{c}*" in man,
          f"noxctl.1 has no entry for command {c}")
    ch = help_text(noxctl, c)
    for o in sorted(long_opts(ch) - {"help"}):
        check("--" + o in man, f"noxctl {c} --help has --{o}, noxctl.1 does not")
g = h.split("Global options:")[1].split("Exit status")[0]
for o in sorted(long_opts(g)):
    check("--" + o in man, f"noxctl --help has global --{o}, noxctl.1 does not")
for code in re.findall(r"^  (\d+) ", h, re.M):
    check(re.search(r"\b" + code + r"\b", section(man, "EXIT STATUS")) is not None,
          f"noxctl exit status {code} not in noxctl.1 EXIT STATUS")

# noxfs -----------------------------------------------------------------------
h = help_text(os.path.join(build, "src/fs/noxfs"))
own = h.split("libfuse options:")[0]
m = section(open(os.path.join(src, "docs/noxfs.1.scd")).read(), "OPTIONS")
for o in sorted(long_opts(own)):
    check("--" + o in m, f"noxfs --help has --{o}, noxfs.1 OPTIONS does not")
for o in sorted(long_opts(m)):
    check("--" + o in own, f"noxfs.1 documents --{o}, noxfs --help does not")
hm = mount_opts(own) | set(re.findall(r", ([a-z0-9_]+)=[A-Z]", own))
mm = man_mount_opts(m)
for o in sorted(hm):
    check(o in mm, f"noxfs --help has -o {o}, noxfs.1 OPTIONS does not")
for o in sorted(mm):
    check(o in hm, f"noxfs.1 documents -o {o}, noxfs --help does not")

print(f"{checks - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)

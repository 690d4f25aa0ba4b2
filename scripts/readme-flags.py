#!/usr/bin/env python3
"""The README's flag tables, generated from the binaries themselves.

Every table of flags in README.md sits between two marker comments:

    <!-- flags: topicflow-sink own -->
    | flag | default | meaning |
    ...
    <!-- end flags -->

and is the output of `BIN [SUBCOMMAND] --help-markdown own|common` (config.hpp: flags_markdown),
i.e. of the option definitions the programs parse with. This script rewrites those blocks
(default) or, with --check, fails when any differs from what the binaries print, when a binary
has flags that no table shows, or when the role programs disagree on the common options. The
readme_flags test (ctest, label unit) runs it with --check.

    scripts/readme-flags.py [--check] [--bin DIR] [--readme FILE]
"""

import argparse
import difflib
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- flags: (?P<command>[^>]+?) (?P<which>own|common) -->$")
END = "<!-- end flags -->"
# Every program and subcommand with options: each must have a table of its own options.
PROGRAMS = ["topicflow run", "topicflow status", "topicflow keygen", "topicflow-sink",
            "topicflow-worker", "topicflow-producer", "topicflow-broker"]
# The role programs, which must all have the same common options (endpoints, CURVE, logging).
ROLES = ["topicflow-sink", "topicflow-worker", "topicflow-producer", "topicflow-broker"]


def markdown(bin_dir, command, which):
    words = command.split()
    argv = [str(bin_dir / words[0])] + words[1:] + ["--help-markdown", which]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"readme-flags: {' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail instead of rewriting")
    parser.add_argument("--bin", default=str(ROOT / "build" / "dev" / "bin"),
                        help="directory of the built binaries (default: build/dev/bin)")
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    args = parser.parse_args()
    bin_dir = pathlib.Path(args.bin)
    readme = pathlib.Path(args.readme)

    lines = readme.read_text().splitlines(keepends=True)
    out, problems, seen = [], [], set()
    i = 0
    while i < len(lines):
        out.append(lines[i])
        match = MARKER.match(lines[i].rstrip("\n"))
        i += 1
        if not match:
            continue
        command, which = match["command"], match["which"]
        seen.add((command, which))
        end = i
        while end < len(lines) and lines[end].rstrip("\n") != END:
            end += 1
        if end == len(lines):
            sys.exit(f"readme-flags: {readme}: no '{END}' after the {command} {which} table")
        current = "".join(lines[i:end])
        wanted = markdown(bin_dir, command, which)
        if current != wanted:
            diff = "".join(difflib.unified_diff(current.splitlines(keepends=True),
                                                wanted.splitlines(keepends=True),
                                                "README.md", f"{command} --help-markdown {which}"))
            problems.append(f"the table of `{command}` ({which}) differs from the binary:\n{diff}")
        out.append(wanted)
        out.append(lines[end])
        i = end + 1

    for program in PROGRAMS:
        if (program, "own") not in seen:
            problems.append(f"README.md has no table of `{program}`'s options "
                            f"(<!-- flags: {program} own -->)")
    common = {role: markdown(bin_dir, role, "common") for role in ROLES}
    if len(set(common.values())) != 1:
        problems.append("the role programs do not have the same common options: " +
                        ", ".join(f"{role}: {len(text.splitlines()) - 2} flags"
                                  for role, text in common.items()))
    if not any(which == "common" for _, which in seen):
        problems.append("README.md has no table of the common options "
                        "(<!-- flags: topicflow-sink common -->)")

    if args.check:
        if problems:
            print("\n".join(problems), file=sys.stderr)
            print("readme-flags: README.md is out of date: run scripts/readme-flags.py "
                  "(after building the binaries)", file=sys.stderr)
            return 1
        print(f"readme-flags: {len(seen)} tables match the binaries")
        return 0
    for problem in problems:
        if "differs" not in problem:
            print(problem, file=sys.stderr)
    readme.write_text("".join(out))
    print(f"readme-flags: {len(seen)} tables written to {readme}")
    return 1 if any("differs" not in p for p in problems) else 0


if __name__ == "__main__":
    sys.exit(main())

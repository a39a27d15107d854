"""`make mutate`'s last line: the share of mutants killed, from mutmut's results, for the mutant name patterns
given.

Killed (a test failed), timeout and segfault (the test process crashed on the mutant) count as killed;
survived, no tests, suspicious and not checked do not.
"""

import fnmatch
import subprocess
import sys
from collections import Counter
from pathlib import Path

KILLED = {"killed", "timeout", "segfault"}


def main(patterns: list[str]) -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    output = subprocess.run(
        [str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    statuses = {}
    for line in output.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name and (not patterns or any(fnmatch.fnmatch(name, p) for p in patterns)):
            statuses[name] = status
    if not statuses:
        print("mutation score: no mutants checked (run mutmut run first)")
        return 1
    counts = Counter(statuses.values())
    killed = sum(n for status, n in counts.items() if status in KILLED)
    survivors = sorted(name for name, status in statuses.items() if status not in KILLED)
    for name in survivors:
        print(f"  {statuses[name]}: {name}")
    by_status = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    print(
        f"mutation score: {killed}/{len(statuses)} mutants killed "
        f"({100 * killed / len(statuses):.1f}%; {by_status})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

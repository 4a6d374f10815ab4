#!/bin/sh
# Prints pip constraints from the project's pin files (requirements/*.txt), the one source of
# Python versions for the images too. pip constraints cannot carry extras or options: strip them.
set -eu
cd "$(dirname "$0")/.."
grep -hEv '^[[:space:]]*(#|-|$)' requirements/*.txt \
    | sed -E 's/\[[^]]*\]//; s/[[:space:]]*#.*$//'

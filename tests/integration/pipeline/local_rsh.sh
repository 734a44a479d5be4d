#!/bin/sh
# A stand-in for ssh in the multi-host launch tests: `local_rsh.sh HOST COMMAND` runs COMMAND
# with sh on this machine, as ssh would on HOST. With RSH_LOG set, it first appends its
# arguments (one line per call) there, so tests can check what went into argv. The host named
# by UNREACHABLE_HOST fails as ssh does when it cannot connect (exit 255).
host=$1
shift
if [ "$host" = "${UNREACHABLE_HOST:-}" ]; then
  echo "ssh: connect to host $host port 22: Connection refused" >&2
  exit 255
fi
if [ -n "${RSH_LOG:-}" ]; then printf '%s %s\n' "$host" "$*" >> "$RSH_LOG"; fi
exec sh -c "$*"

#!/usr/bin/env bash
# Stands in for the rollcall binary in a benchmark (`BENCH_ROLLCALL_BIN=scripts/callgrind-serve.sh`)
# and runs `rollcall serve` under valgrind's callgrind, which counts instructions: the same
# figures for the same binary and requests, however busy the machine is. Every other command
# runs the binary as is.
#
#   ROLLCALL_PROFILE_BIN   a rollcall built with symbols (required), e.g.
#                          CARGO_TARGET_DIR=/tmp/rc-prof CARGO_PROFILE_RELEASE_STRIP=false \
#                            cargo build --release --bin rollcall
#   ROLLCALL_PROFILE_OUT   where the profile goes (default /tmp/rollcall.callgrind)
#
# `serve` runs in a session of its own, so that the benchmark's SIGKILL of this script leaves it
# running: once the benchmark has printed its figures, `callgrind_control -d` writes the profile
# (as ROLLCALL_PROFILE_OUT.1), then kill the daemon (`pkill -f callgrind-amd64`) and read it
# with `callgrind_annotate --inclusive=yes`.
set -euo pipefail
binary=${ROLLCALL_PROFILE_BIN:?set ROLLCALL_PROFILE_BIN to a rollcall built with symbols}
for argument in "$@"; do
    if [ "$argument" = serve ]; then
        setsid valgrind --tool=callgrind \
            --callgrind-out-file="${ROLLCALL_PROFILE_OUT:-/tmp/rollcall.callgrind}" \
            "$binary" "$@" &
        wait $!
        exit $?
    fi
done
exec "$binary" "$@"

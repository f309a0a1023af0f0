#!/bin/sh
# Runs every fuzz target for SECONDS each (default 60) with libFuzzer, one after the other,
# growing fuzz/corpus/TARGET/; prints each target's last status line and stops at the first crash
# (its input is saved under fuzz/artifacts/TARGET/).
#   fuzz/run.sh [SECONDS] [TARGET ...]
# Needs a nightly toolchain and cargo-fuzz: `rustup toolchain install nightly`,
# `cargo install cargo-fuzz`. Sanitizers are off (`-s none`): lagom's code is safe Rust, and the
# properties checked are the targets' own assertions.
set -eu
cd "$(dirname "$0")"
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"frame_reader message_codec server_core rendezvous decen_driver checkpoint"}
for t in $targets; do
    mkdir -p "corpus/$t"
    echo "== $t: ${seconds} s"
    cargo +nightly fuzz run -s none "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
        grep -E '^#[0-9]+ *DONE|^Done|stat::number_of_executed_units|stat::peak_rss_mb|ERROR|panicked|SUMMARY' || true
    if [ -n "$(ls "artifacts/$t" 2>/dev/null)" ]; then
        echo "crash in $t: $(ls "artifacts/$t")" >&2
        exit 1
    fi
done

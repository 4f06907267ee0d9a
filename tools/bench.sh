#!/usr/bin/env bash
# Builds the release Lambda package of chat-stream with cargo lambda and runs
# the benchmarks, printing their figures (nothing here asserts a timing):
#   - added latency between the stand-in's first token and the client's first
#     text frame (200 chats through the local host, zero-delay stand-in);
#   - start-to-ready of the release binary against a fake Runtime API (50 starts);
#   - peak RSS over 1,000 sequential chats;
#   - the zipped package size.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools/bootstrap.sh
export PATH="$root/.venv/bin:$PATH"
export CARGO_TARGET_DIR="$root/target/lambda-build"

# arm64 is what AWS runs; this machine has only the x86_64 standard library,
# so the local figures are for x86_64 (override with BENCH_TARGET).
target="${BENCH_TARGET:-x86_64-unknown-linux-gnu}"
echo "== cargo lambda build --release --output-format zip -p chat-stream ($target)"
cargo lambda build --release --output-format zip --target "$target" -p chat-stream
binary="$CARGO_TARGET_DIR/$target/release/chat-stream"
zip="$CARGO_TARGET_DIR/lambda/chat-stream/bootstrap.zip"

unset CARGO_TARGET_DIR
cargo build --quiet --profile bench -p bench
bench="$root/target/release/bench"  # the bench profile builds into target/release
echo
"$bench" first-token --requests "${BENCH_REQUESTS:-200}"
"$bench" cold-start --binary "$binary" --starts "${BENCH_STARTS:-50}"
"$bench" forms --submissions "${BENCH_SUBMISSIONS:-500}"
"$bench" fulfillment --submissions "${BENCH_FULFILLMENTS:-200}"
"$bench" rss --binary "$binary" --chats "${BENCH_CHATS:-1000}"
echo "size: $(stat -c %s "$binary") bytes unzipped binary, $(stat -c %s "$zip") bytes zipped ($zip)"

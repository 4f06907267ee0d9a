#!/usr/bin/env bash
# Every figure of docs/performance.md, on the release Lambda
# packages that ship, printing the commit it measured. Nothing here asserts a
# timing. Steps:
#   - `cargo lambda build --release --output-format zip` of the seven functions,
#     and each binary's and zip's size;
#   - start-to-ready of each release binary under the Runtime API emulator
#     (warm page cache, then dropped when run as root);
#   - added first-token latency at the client socket, through the Lambda
#     streaming path and the local host, over the floor;
#   - CPU per chat and per form submit, in process with in-memory ports (the
#     bench is built with the same release profile: LTO, one codegen unit);
#   - peak RSS and process CPU of the chat binary over 1,000 chats;
#   - form-intake and fulfillment latency through the local stack;
#   - emails and SMS sent per submission, 500 submissions at concurrency 20.
# BENCH_TARGET picks the target triple (default x86_64-unknown-linux-gnu;
# aarch64-unknown-linux-gnu needs that standard library installed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools/bootstrap.sh
export PATH="$root/.venv/bin:$PATH"
export CARGO_TARGET_DIR="$root/target/lambda-build"

commit="$(git rev-parse --short HEAD)"
[[ -n "$(git status --porcelain --untracked-files=no)" ]] && commit="$commit (with uncommitted changes)"
echo "== measuring commit $commit on $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m)"

target="${BENCH_TARGET:-x86_64-unknown-linux-gnu}"
# .cargo/config.toml gives the arm64 packages these flags; the x86_64 ones
# measured here get the same (an environment variable, so host builds keep theirs).
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C force-unwind-tables=no"
functions=(chat-stream form-intake outbox-sweeper email-sender sms-sender handler-dispatch funnel-projector)
packages=(); for f in "${functions[@]}"; do packages+=(-p "$f"); done
echo "== cargo lambda build --release --output-format zip --target $target (seven functions)"
time cargo lambda build --release --output-format zip --target "$target" "${packages[@]}"
release="$CARGO_TARGET_DIR/$target/release"
echo
# .eh_frame stays even with the flag, which the crates' own code does get (cargo's
# fingerprints show it): what is left is the unwind tables of code built without
# it, the precompiled standard library's and C or assembly objects'.
eh_frame() {
  local hex
  hex="$(readelf -SW "$1" | awk '{ for (i = 1; i < NF; i++) if ($i == ".eh_frame") print $(i + 4) }')"
  [[ -n "$hex" ]] && printf '  (.eh_frame %d bytes)' "$((16#$hex))"
}
echo "size: unzipped binary / bootstrap.zip, bytes (and the unwind tables left in the binary)"
for f in "${functions[@]}"; do
  printf '  %-17s %9s / %9s%s\n' "$f" "$(stat -c %s "$release/$f")" "$(stat -c %s "$CARGO_TARGET_DIR/lambda/$f/bootstrap.zip")" \
    "$(eh_frame "$release/$f")"
done

echo "== cargo build --release -p bench (same profile and target as the packages)"
cargo build --release --target "$target" -p bench
bench="$release/bench"
echo
"$bench" cold-start --binaries "$release" --starts "${BENCH_STARTS:-50}"
"$bench" first-token --binary "$release/chat-stream" --requests "${BENCH_REQUESTS:-200}"
"$bench" cpu --chats "${BENCH_CPU_CHATS:-2000}" --submissions "${BENCH_CPU_SUBMISSIONS:-2000}"
"$bench" rss --binary "$release/chat-stream" --chats "${BENCH_CHATS:-1000}"
"$bench" forms --submissions "${BENCH_SUBMISSIONS:-500}"
"$bench" fulfillment --submissions "${BENCH_FULFILLMENTS:-200}"
"$bench" exactly-once --submissions "${BENCH_EXACTLY_ONCE:-500}" --concurrency 20
echo
echo "== measured commit $commit"

#!/usr/bin/env bash
# Builds execsentry and execsentry-host for Apple silicon and Intel and joins each pair into one
# universal binary in $DIST/bin (lipo). Needs macOS with Xcode's command line tools.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

require_macos "linking for Apple targets needs Apple's linker and SDK"
require_tool cargo "install Rust from https://rustup.rs"
require_tool lipo "install Xcode's command line tools: xcode-select --install"
check_settings

TARGETS=(aarch64-apple-darwin x86_64-apple-darwin)
BINS=(execsentry execsentry-host)
export MACOSX_DEPLOYMENT_TARGET="$MIN_MACOS"
# The host asks macOS for this extension id by default.
export EXECSENTRY_EXTENSION_ID="$EXT_BUNDLE_ID"

cd "$REPO_ROOT" || exit 1
for target in "${TARGETS[@]}"; do
    rustup target add "$target" >/dev/null 2>&1 || true
    cargo build --release --locked --target "$target" \
        -p execsentry --bin execsentry \
        -p execsentry-macos-host --bin execsentry-host
done

mkdir -p "$DIST/bin"
for bin in "${BINS[@]}"; do
    inputs=()
    for target in "${TARGETS[@]}"; do
        inputs+=("$REPO_ROOT/target/$target/release/$bin")
    done
    lipo -create -output "$DIST/bin/$bin" "${inputs[@]}"
    lipo -info "$DIST/bin/$bin"
done
echo "$PROG: universal binaries in $DIST/bin"

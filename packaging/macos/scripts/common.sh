# shellcheck shell=bash
# Settings and helpers shared by packaging/macos/scripts/*.sh. Sourced, never run.
#
# Every setting can be overridden from the environment:
#   TEAM_ID            Apple Developer Team ID (10 characters)            required by assemble/sign
#   HOST_BUNDLE_ID     host app bundle id        (com.execsentry.sensor)
#   EXT_BUNDLE_ID      system extension id       ($HOST_BUNDLE_ID.es)
#   DAEMON_BUNDLE_ID   launchd daemon app id     ($HOST_BUNDLE_ID.daemon)
#   VERSION            CFBundleShortVersionString (workspace version in Cargo.toml)
#   BUILD              CFBundleVersion           (1; raise it for every release)
#   MIN_MACOS          LSMinimumSystemVersion    (13.0)
#   DIST               output folder             (target/macos-dist)

set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PACKAGING_DIR="$(dirname "$SCRIPTS_DIR")"
REPO_ROOT="$(cd "$PACKAGING_DIR/../.." && pwd)"
PROG="$(basename "$0")"

workspace_version() {
    sed -n 's/^version = "\([^"]*\)"$/\1/p' "$REPO_ROOT/Cargo.toml" | head -n 1
}

HOST_BUNDLE_ID="${HOST_BUNDLE_ID:-com.execsentry.sensor}"
EXT_BUNDLE_ID="${EXT_BUNDLE_ID:-$HOST_BUNDLE_ID.es}"
DAEMON_BUNDLE_ID="${DAEMON_BUNDLE_ID:-$HOST_BUNDLE_ID.daemon}"
VERSION="${VERSION:-$(workspace_version)}"
BUILD="${BUILD:-1}"
MIN_MACOS="${MIN_MACOS:-13.0}"
DIST="${DIST:-$REPO_ROOT/target/macos-dist}"
TEAM_ID="${TEAM_ID:-}"

APP_NAME="ExecSentry.app"
DAEMON_APP_NAME="ExecSentryDaemon.app"

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

# require_macos WHY: stop with a clear message anywhere but macOS.
require_macos() {
    if [ "$(uname -s)" != "Darwin" ]; then
        echo "$PROG: error: this step needs macOS ($1); this machine runs $(uname -s)." >&2
        echo "$PROG: only assemble.sh works elsewhere. See packaging/macos/README.md." >&2
        exit 2
    fi
}

# require_var NAME HINT
require_var() {
    if [ -z "${!1:-}" ]; then
        die "$1 is not set: $2"
    fi
}

# require_tool NAME HINT
require_tool() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

check_settings() {
    require_var TEAM_ID "set it to your Apple Developer Team ID, e.g. TEAM_ID=AB12CD34EF"
    [[ "$TEAM_ID" =~ ^[A-Z0-9]{10}$ ]] ||
        die "TEAM_ID must be 10 upper-case letters or digits (the Apple Developer Team ID), got '$TEAM_ID'"
    local id
    for id in "$HOST_BUNDLE_ID" "$EXT_BUNDLE_ID" "$DAEMON_BUNDLE_ID"; do
        [[ "$id" =~ ^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$ ]] ||
            die "bundle identifier '$id' is not reverse-DNS (letters, digits, '-' and '.')"
    done
    [[ "$VERSION" =~ ^[0-9]+(\.[0-9]+){0,2}$ ]] || die "VERSION must be like 1.2.3, got '$VERSION'"
    [[ "$BUILD" =~ ^[0-9]+(\.[0-9]+){0,2}$ ]] || die "BUILD must be like 42 or 1.2.3, got '$BUILD'"
    [[ "$MIN_MACOS" =~ ^[0-9]+(\.[0-9]+){0,2}$ ]] || die "MIN_MACOS must be like 13.0, got '$MIN_MACOS'"
}

# render TEMPLATE OUTPUT: fill in the @NAME@ placeholders (values were checked by check_settings,
# so they hold no sed metacharacters).
render() {
    mkdir -p "$(dirname "$2")"
    sed -e "s/@TEAM_ID@/$TEAM_ID/g" \
        -e "s/@HOST_BUNDLE_ID@/$HOST_BUNDLE_ID/g" \
        -e "s/@EXT_BUNDLE_ID@/$EXT_BUNDLE_ID/g" \
        -e "s/@DAEMON_BUNDLE_ID@/$DAEMON_BUNDLE_ID/g" \
        -e "s/@VERSION@/$VERSION/g" \
        -e "s/@BUILD@/$BUILD/g" \
        -e "s/@MIN_MACOS@/$MIN_MACOS/g" \
        "$1" >"$2"
    if grep -q '@[A-Z_]*@' "$2"; then
        die "$2 still has a placeholder: $(grep -o '@[A-Z_]*@' "$2" | head -n 1)"
    fi
}

# Where assemble.sh puts things.
app_dir() { echo "$DIST/$APP_NAME"; }
ext_dir() { echo "$DIST/$APP_NAME/Contents/Library/SystemExtensions/$EXT_BUNDLE_ID.systemextension"; }
daemon_dir() { echo "$DIST/$DAEMON_APP_NAME"; }

#!/usr/bin/env bash
# Signs inside-out with hardened runtime, a secure timestamp and each bundle's entitlements:
# the system extension, then the host app (no --deep), then the daemon app; verifies each.
#
#   APP_IDENTITY   "Developer ID Application: Your Org (TEAMID)" (see: security find-identity -v -p codesigning)
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

require_macos "codesign is part of macOS"
require_tool codesign "install Xcode's command line tools: xcode-select --install"
check_settings
require_var APP_IDENTITY "set it to your 'Developer ID Application: … ($TEAM_ID)' identity"

APP="$(app_dir)"
EXT="$(ext_dir)"
DAEMON="$(daemon_dir)"
[ -d "$EXT" ] || die "$EXT is missing: run assemble.sh first"

sign() { # BUNDLE ENTITLEMENTS
    codesign --force --timestamp --options runtime \
        --entitlements "$DIST/entitlements/$2.entitlements" \
        --sign "$APP_IDENTITY" "$1"
    codesign --verify --strict --verbose=2 "$1"
    codesign --display --entitlements - --xml "$1" >/dev/null
}

sign "$EXT" extension
sign "$APP" host
sign "$DAEMON" daemon
codesign --display --requirements - "$EXT"
echo "$PROG: signed $APP and $DAEMON with '$APP_IDENTITY'"

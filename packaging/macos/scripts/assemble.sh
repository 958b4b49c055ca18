#!/usr/bin/env bash
# Lays out the bundles from the universal binaries, with Info.plists, entitlements and MDM
# profiles rendered for TEAM_ID. Plain file work: runs on any OS (the tests run it on Linux).
#
#   BIN_DIR          where execsentry and execsentry-host are ($DIST/bin)
#   EXT_PROFILE      Developer ID provisioning profile granting endpoint-security.client
#   HOST_PROFILE     Developer ID provisioning profile granting system-extension.install
#   DAEMON_PROFILE   profile for the launchd daemon app (endpoint-security.client)
#   EARLY_BOOT=1     set NSEndpointSecurityEarlyBoot
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

check_settings
BIN_DIR="${BIN_DIR:-$DIST/bin}"
for bin in execsentry execsentry-host; do
    [ -f "$BIN_DIR/$bin" ] || die "$BIN_DIR/$bin is missing: run build-universal.sh first (or set BIN_DIR)"
done

# embed PROFILE_VAR BUNDLE: copy a provisioning profile in, or say what its absence means.
embed() {
    local path="${!1:-}"
    if [ -n "$path" ]; then
        [ -f "$path" ] || die "$1=$path does not exist"
        cp "$path" "$2/Contents/embedded.provisionprofile"
    else
        echo "$PROG: warning: $1 not set: $(basename "$2") has no embedded.provisionprofile;" \
            "macOS will refuse its restricted entitlement outside development (SIP off)" >&2
    fi
}

APP="$(app_dir)"
EXT="$(ext_dir)"
DAEMON="$(daemon_dir)"
rm -rf "$APP" "$DAEMON" "$DIST/entitlements" "$DIST/profiles" "$DIST/launchd"

# The host app, and the system extension inside it.
mkdir -p "$APP/Contents/MacOS" "$EXT/Contents/MacOS"
render "$PACKAGING_DIR/bundle/Host-Info.plist.in" "$APP/Contents/Info.plist"
cp "$BIN_DIR/execsentry-host" "$APP/Contents/MacOS/execsentry-host"
render "$PACKAGING_DIR/bundle/Extension-Info.plist.in" "$EXT/Contents/Info.plist"
cp "$BIN_DIR/execsentry" "$EXT/Contents/MacOS/$EXT_BUNDLE_ID"
if [ "${EARLY_BOOT:-0}" = 1 ]; then
    sed -i.bak '/<key>NSEndpointSecurityEarlyBoot<\/key>/{n;s/<false\/>/<true\/>/;}' "$EXT/Contents/Info.plist"
    rm -f "$EXT/Contents/Info.plist.bak"
fi
embed EXT_PROFILE "$EXT"
embed HOST_PROFILE "$APP"

# The launchd daemon alternative.
mkdir -p "$DAEMON/Contents/MacOS"
render "$PACKAGING_DIR/bundle/Daemon-Info.plist.in" "$DAEMON/Contents/Info.plist"
cp "$BIN_DIR/execsentry" "$DAEMON/Contents/MacOS/execsentry"
embed DAEMON_PROFILE "$DAEMON"
mkdir -p "$DIST/launchd"
cp "$PACKAGING_DIR/launchd/com.execsentry.sensor.plist" "$DIST/launchd/"

chmod 755 "$APP/Contents/MacOS/execsentry-host" "$EXT/Contents/MacOS/$EXT_BUNDLE_ID" \
    "$DAEMON/Contents/MacOS/execsentry"

for name in extension host daemon; do
    render "$PACKAGING_DIR/entitlements/$name.entitlements" "$DIST/entitlements/$name.entitlements"
done
for profile in "$PACKAGING_DIR"/mdm/*.mobileconfig; do
    render "$profile" "$DIST/profiles/$(basename "$profile")"
done

if command -v plutil >/dev/null 2>&1; then
    find "$DIST" -name Info.plist -o -name '*.entitlements' -o -name '*.mobileconfig' |
        while read -r f; do plutil -lint -s "$f" || die "$f is not a valid property list"; done
fi
echo "$PROG: assembled $APP and $DAEMON (team $TEAM_ID, version $VERSION build $BUILD)"

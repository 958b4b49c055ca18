#!/usr/bin/env bash
# Sends the installer to Apple's notary service, waits, and staples the ticket.
#
#   NOTARY_PROFILE   keychain profile made once with:
#                    xcrun notarytool store-credentials NAME --apple-id … --team-id "$TEAM_ID"
#   PKG              the installer ($DIST/ExecSentry-$VERSION.pkg)
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

require_macos "notarytool and stapler ship with Xcode"
require_tool xcrun "install Xcode's command line tools: xcode-select --install"
require_var NOTARY_PROFILE "create one with: xcrun notarytool store-credentials NAME --apple-id ... --team-id ..."
PKG="${PKG:-$DIST/ExecSentry-$VERSION.pkg}"
[ -f "$PKG" ] || die "$PKG is missing: run pkg.sh first (or set PKG)"

xcrun notarytool submit "$PKG" --keychain-profile "$NOTARY_PROFILE" --wait
xcrun stapler staple "$PKG"
xcrun stapler validate "$PKG"
spctl --assess --type install --verbose=2 "$PKG"
echo "$PROG: notarized and stapled $PKG"

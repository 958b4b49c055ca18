#!/usr/bin/env bash
# Builds the signed installer: /Applications/ExecSentry.app (activated by postinstall) and the
# launchd daemon alternative under /Library/Application Support/ExecSentry (not loaded).
#
#   INSTALLER_IDENTITY   "Developer ID Installer: Your Org (TEAMID)"
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

require_macos "pkgbuild and productbuild are part of macOS"
require_tool pkgbuild "install Xcode's command line tools: xcode-select --install"
require_tool productbuild "install Xcode's command line tools: xcode-select --install"
check_settings
require_var INSTALLER_IDENTITY "set it to your 'Developer ID Installer: … ($TEAM_ID)' identity"

APP="$(app_dir)"
DAEMON="$(daemon_dir)"
codesign --verify --strict "$APP" || die "$APP is not signed: run sign.sh first"

ROOT="$DIST/pkgroot"
SUPPORT="$ROOT/Library/Application Support/ExecSentry"
rm -rf "$ROOT"
mkdir -p "$ROOT/Applications" "$SUPPORT/launchd"
ditto "$APP" "$ROOT/Applications/$APP_NAME"
ditto "$DAEMON" "$SUPPORT/$DAEMON_APP_NAME"
cp "$DIST/launchd/com.execsentry.sensor.plist" "$SUPPORT/launchd/"

COMPONENT_PLIST="$DIST/component.plist"
pkgbuild --analyze --root "$ROOT" "$COMPONENT_PLIST"
count=$(/usr/libexec/PlistBuddy -c "Print" "$COMPONENT_PLIST" | grep -c "RootRelativeBundlePath" || true)
for ((i = 0; i < count; i++)); do
    /usr/libexec/PlistBuddy -c "Set :$i:BundleIsRelocatable false" "$COMPONENT_PLIST"
done

COMPONENT="$DIST/ExecSentry-component.pkg"
pkgbuild --root "$ROOT" --component-plist "$COMPONENT_PLIST" \
    --scripts "$PACKAGING_DIR/pkg-scripts" \
    --identifier "$HOST_BUNDLE_ID.pkg" --version "$VERSION" \
    --install-location / "$COMPONENT"

render "$PACKAGING_DIR/bundle/Distribution.xml.in" "$DIST/Distribution.xml"
PKG="$DIST/ExecSentry-$VERSION.pkg"
productbuild --distribution "$DIST/Distribution.xml" --package-path "$DIST" \
    --sign "$INSTALLER_IDENTITY" "$PKG"
pkgutil --check-signature "$PKG"
echo "$PROG: built $PKG"

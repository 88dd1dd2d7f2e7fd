#!/usr/bin/env bash
# UNTESTED: this project has no macOS machine, and moorage has no macOS driver yet
# (HyperKit or Apple's Virtualization framework would be one more vm/drivers module).
# Builds dist/VERSION/moorage.app and moorage-VERSION.dmg from the wheel that
# `scripts/release build VERSION --only wheel` made, as Docker for Mac bundles its
# CLI tools: the app carries its own Python environment, built at the bundle's
# final path (/Applications/moorage.app), so no script is relocated.
# Usage (on macOS, with python3 >= 3.11): installers/macos/build-app.sh VERSION
set -euo pipefail
version="${1:?usage: build-app.sh VERSION}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
dist="$here/dist/$version"
wheel="$(ls "$dist"/moorage-"$version"-py3-none-any.whl)"
app=/Applications/moorage.app          # built in place: the venv's paths are final
contents="$app/Contents"
rm -rf "$app"
mkdir -p "$contents/MacOS" "$contents/Resources"
python3 -m venv "$contents/Resources/venv"
"$contents/Resources/venv/bin/pip" install --quiet "$wheel"
cat > "$contents/MacOS/moorage" <<'SH'
#!/bin/sh
exec "$(dirname "$0")/../Resources/venv/bin/moorage" tray "$@"
SH
chmod +x "$contents/MacOS/moorage"
cat > "$contents/Info.plist" <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
  <key>CFBundleName</key><string>moorage</string>
  <key>CFBundleIdentifier</key><string>dev.moorage.app</string>
  <key>CFBundleVersion</key><string>$version</string>
  <key>CFBundleShortVersionString</key><string>$version</string>
  <key>CFBundleExecutable</key><string>moorage</string>
  <key>LSUIElement</key><true/>
</dict></plist>
PLIST
ln -sf "$contents/Resources/venv/bin/moorage" "$contents/Resources/moorage-cli"
hdiutil create -volname moorage -srcfolder "$app" -ov -format UDZO "$dist/moorage-$version.dmg"
echo "built $dist/moorage-$version.dmg"

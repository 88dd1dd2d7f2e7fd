# UNTESTED: this project has no Windows machine, and moorage has no Windows driver yet
# (Hyper-V or QEMU with WHPX would be one more vm/drivers module).
# Builds dist\VERSION\moorage-VERSION-setup.exe with Inno Setup from the wheel that
# `scripts/release build VERSION --only wheel` made. The installer creates the Python
# environment at its final path at install time (as the Debian package's postinst
# does), so nothing is relocated.
# Usage (PowerShell, with Python >= 3.11 and Inno Setup 6's iscc on PATH):
#   installers\windows\build-installer.ps1 -Version 2.1.0
param([Parameter(Mandatory = $true)][string]$Version)
$ErrorActionPreference = "Stop"
$root = Resolve-Path "$PSScriptRoot\..\.."
$dist = Join-Path $root "dist\$Version"
$wheel = Join-Path $dist "moorage-$Version-py3-none-any.whl"
if (-not (Test-Path $wheel)) { throw "no $wheel: run scripts/release build $Version --only wheel" }
$wheels = Join-Path $dist "windows-wheels"
New-Item -ItemType Directory -Force $wheels | Out-Null
python -m pip wheel --quiet --only-binary :all: -w $wheels $wheel
iscc "/DVersion=$Version" "/DWheels=$wheels" "/O$dist" (Join-Path $PSScriptRoot "moorage.iss")

#!/bin/sh
# Run inside a fresh Debian 12 root (tests/e2e/test_debian_package.py) where apt has
# just installed moorage's .deb: what a new user gets, then an update through the
# shipped root of trust and a rollback, both through dpkg. One "check NAME: ok" line
# per check; any failure stops the script (set -e) and fails the test.
set -eu
useradd -m -s /bin/sh dev
as_dev() { runuser -u dev -- env HOME=/home/dev XDG_RUNTIME_DIR= "$@"; }

echo "check version: $(as_dev moorage --version)"
as_dev moorage update --help >/dev/null && echo "check update-help: ok"
if as_dev moorage --help | grep -q '^  tray '; then
    as_dev moorage tray --help >/dev/null && echo "check tray-help: ok"
else
    echo "check tray-help: absent (moorage tray is not on this branch yet)"
fi
desktop-file-validate /usr/share/applications/moorage.desktop && echo "check desktop: ok"
desktop-file-validate /etc/xdg/autostart/moorage-tray.desktop && echo "check autostart: ok"
exec_cmd=$(sed -n 's/^Exec=\([^ ]*\).*/\1/p' /usr/share/applications/moorage.desktop)
command -v "$exec_cmd" >/dev/null && echo "check desktop-exec: ok"
test -s /usr/share/icons/hicolor/scalable/apps/moorage.svg && echo "check icon: ok"
# The environment was built where it runs: its scripts name their own interpreter.
current=$(readlink /opt/moorage/current)
head -1 "/opt/moorage/$current/bin/moorage" | grep -qx "#!/opt/moorage/$current/bin/python.*" \
    && echo "check venv-in-place: ok ($current)"
for tool in docker docker-compose qemu-system-x86_64 qemu-img virsh mmdebstrap; do
    command -v "$tool" >/dev/null && echo "check tool $tool: ok"
done
{ command -v virtiofsd || test -x /usr/lib/qemu/virtiofsd; } >/dev/null && echo "check tool virtiofsd: ok"
docker-compose version --short >/dev/null && echo "check compose: ok"

# An update from the server the build ships, verified by the root it ships; then back.
moorage update check
moorage update apply -y
echo "check updated: $(moorage --version)"
test -d "/opt/moorage/$(readlink /opt/moorage/previous)" && echo "check previous-kept: ok"
moorage update rollback -y
echo "check rolled-back: $(moorage --version)"
kill "$(cat /tmp/moorage-0/default/agent.pid)" 2>/dev/null || true

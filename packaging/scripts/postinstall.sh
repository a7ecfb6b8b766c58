#!/bin/sh
# fxd postinstall, for the .deb (postinst) and the .rpm (%post).
#   deb: $1 = configure, $2 = the version configured before ("" on a first
#        install), or abort-upgrade, abort-remove, abort-deconfigure
#   rpm: $1 = the number of fxd packages installed once this one is: 1 on
#        install, 2 on upgrade (the old package's %postun restarts fxd)
# It creates nothing the package ships (/etc/fxd/fxd.toml, /var/lib/fxd)
# and never enables or starts a unit: fxd waits for its site config.
set -e

units="fxd.service fxd-node.service"

systemd_running() { [ -d /run/systemd/system ]; }

# invoke ACTION UNIT...: through deb-systemd-invoke where there is one
# (Debian: it asks policy-rc.d first), else through systemctl.
invoke() {
	if command -v deb-systemd-invoke >/dev/null 2>&1; then
		deb-systemd-invoke "$@"
	else
		systemctl "$@"
	fi
}

case "$1" in
configure)
	if systemd_running; then
		systemctl daemon-reload || true
		# An upgrade: restart fxd and the agent if they were running, on
		# the new binaries and units. A first install starts nothing.
		if [ -n "$2" ]; then
			invoke try-restart $units || true
		fi
	fi
	;;
abort-upgrade | abort-remove | abort-deconfigure) ;;
[0-9]*)
	if systemd_running; then
		systemctl daemon-reload || true
	fi
	;;
*)
	echo "fxd postinstall: unknown argument \"$1\"" >&2
	exit 1
	;;
esac
exit 0

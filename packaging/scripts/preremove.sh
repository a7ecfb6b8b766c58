#!/bin/sh
# fxd preremove, for the .deb (prerm) and the .rpm (%preun).
#   deb: $1 = remove, upgrade, deconfigure or failed-upgrade
#   rpm: $1 = the number of fxd packages left once this one is gone: 0 on
#        erase, 1 on upgrade
# On removal fxd stops (it drains: running tasks are requeued, and run
# when fxd is back); on upgrade it keeps serving until the new package's
# scripts restart it. /etc/fxd and /var/lib/fxd are left alone.
set -e

units="fxd.socket fxd.service fxd-node.service"

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
remove)
	# deb: the units stay enabled if they were, for a reinstall; a purge
	# forgets them.
	if systemd_running; then
		invoke stop $units || true
	fi
	;;
0)
	# rpm erase: stop and disable, as %systemd_preun does.
	if systemd_running; then
		systemctl --no-reload disable --now $units || true
	fi
	;;
upgrade | deconfigure | failed-upgrade | [1-9]*) ;;
*)
	echo "fxd preremove: unknown argument \"$1\"" >&2
	exit 1
	;;
esac
exit 0

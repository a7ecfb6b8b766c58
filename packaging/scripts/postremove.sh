#!/bin/sh
# fxd postremove, for the .deb (postrm) and the .rpm (%postun).
#   deb: $1 = remove, purge, upgrade, failed-upgrade, abort-install,
#        abort-upgrade or disappear
#   rpm: $1 = the number of fxd packages left: 0 on erase, 1 on upgrade
# remove (and rpm erase) keep the site config (/etc/fxd) and the state
# (/var/lib/fxd: tasks, tokens, images, the data cache), so that a
# reinstall goes on where fxd stopped; only a deb purge removes them.
set -e

units="fxd.socket fxd.service fxd-node.service"

systemd_running() { [ -d /run/systemd/system ]; }

reload() {
	if systemd_running; then
		systemctl daemon-reload || true
	fi
}

# forget_units removes what enabling the units left under
# /etc/systemd/system: links to unit files that are gone now, and the
# drop-in directories of `systemctl edit`.
forget_units() {
	for u in $units; do
		for link in /etc/systemd/system/*.wants/"$u"; do
			if [ -L "$link" ]; then rm -f "$link"; fi
		done
		rm -rf "/etc/systemd/system/$u.d"
	done
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper purge $units >/dev/null || true
	fi
}

case "$1" in
remove | 0)
	# The unit files are gone; /run/fxd (fxd's socket dir) is no one's now.
	rm -rf /run/fxd
	reload
	;;
purge)
	rm -rf /run/fxd
	forget_units
	reload
	# The site's config, tokens, task store, images and data cache.
	if ! rm -rf /etc/fxd /var/lib/fxd; then
		echo "fxd postremove: could not remove all of /etc/fxd and /var/lib/fxd (is an image still mounted under /var/lib/fxd?); remove them by hand" >&2
	fi
	;;
[1-9]*)
	# rpm upgrade, after the old package's files are gone: restart fxd and
	# the agent if they were running, as %systemd_postun_with_restart does.
	if systemd_running; then
		systemctl daemon-reload || true
		systemctl try-restart fxd.service fxd-node.service || true
	fi
	;;
upgrade | failed-upgrade | abort-install | abort-upgrade | disappear) ;;
*)
	echo "fxd postremove: unknown argument \"$1\"" >&2
	exit 1
	;;
esac
exit 0

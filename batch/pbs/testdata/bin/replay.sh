# Sourced by the fakes: when the test has put <command>.replay in the
# state directory, replay it instead (its stdout file, and <command>.stderr
# and <command>.rc when they exist) and exit.
fake_dir=${FXD_PBS_FAKE_DIR:?FXD_PBS_FAKE_DIR is not set: the fake PBS commands keep their jobs there}
fake_data=$(cd "$(dirname "$0")/.." && pwd)
printf '%s\n' "$*" >> "$fake_dir/$fake_cmd.calls"
if [ -f "$fake_dir/$fake_cmd.replay" ]; then
	cat "$(cat "$fake_dir/$fake_cmd.replay")"
	[ -f "$fake_dir/$fake_cmd.stderr" ] && cat "$fake_dir/$fake_cmd.stderr" >&2
	exit "$(cat "$fake_dir/$fake_cmd.rc" 2>/dev/null || echo 0)"
fi

# bench/mount_lib.sh - mount helpers shared by the benchmarks (sourced, not run).
# Needs DAEMON (mount.tpdefs), MNT, WORK and die() from the caller; OPTS (mount options for
# every mount) is optional. Every daemon pid is also appended to PIDS for the caller's cleanup.
DPID=""

# mnt BACKING [OPTIONS]: the daemon runs in the foreground, in the background of this shell, so
# that its pid (DPID) is known for memory and CPU readings.
mnt() {
	local o="${OPTS:-}${2:+,$2}"
	o=${o#,}
	"$DAEMON" -f ${o:+-o "$o"} "$1" "$MNT" >>"$WORK/daemon.log" 2>&1 &
	DPID=$!
	PIDS+=("$DPID")
	for _ in $(seq 200); do
		mountpoint -q "$MNT" && return 0
		kill -0 "$DPID" 2>/dev/null || { cat "$WORK/daemon.log" >&2; die "mount failed"; }
		sleep 0.05
	done
	die "mount timed out"
}

# umnt: unmount MNT and wait until the daemon has exited.
umnt() {
	fusermount3 -u "$MNT" || { sleep 1; fusermount3 -u "$MNT"; }
	for _ in $(seq 600); do kill -0 "$DPID" 2>/dev/null || { DPID=""; return 0; }; sleep 0.05; done
	die "daemon $DPID did not exit after unmount"
}

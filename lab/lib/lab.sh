# Guest-side node management; sourced (bash) by guest/init2 and bin/lab-reboot.
# A node is one process ("holder") in its own net + mount + uts namespaces, put
# in the cgroup /sys/fs/cgroup/lab/nodeI so that everything ever started inside
# the node can be killed at once (cgroup.kill) without scanning /proc.
# Every exec costs ~11 ms in UML: the loops below use shell builtins only and
# batch the rest (one mkdir, one `ip -batch` for all root-side links).

LAB_DIR=${LAB_DIR:-/lab}
LAB_CGROUP=/sys/fs/cgroup/lab

# Data segment addressing: node I has 10.77.0.I and fd77::I (I written in
# decimal digits); the control namespace sits on .254 / ::fe. Written out
# literally below: a $(function) call forks, and forks are slow here.

# lab_node_index NAME|I -> I (validated against the running lab)
lab_node_index() {
    local i=${1#node}
    case $i in '' | *[!0-9]* | 0*) return 1 ;; esac
    [ "$i" -ge 1 ] && [ "$i" -le "${LAB_NODES:-0}" ] && echo "$i"
}

# lab_node_pid NAME|I -> pid of the node's holder
lab_node_pid() {
    local i pid
    i=$(lab_node_index "$1") || { echo "lab: no such node: $1" >&2; return 1; }
    read -r pid 2>/dev/null <"$LAB_DIR/nodes/node$i/pid" && [ -d "/proc/$pid" ] \
        || { echo "lab: node$i is not running" >&2; return 1; }
    echo "$pid"
}

# lab_nodes_up [--boot] I... : create the given nodes concurrently; 0 when all are ready.
# --boot: the node's eth1 is left down without addresses and sshd is not started; the node's
# boot (lab_nodes_boot) brings them up (net-up.batch, node_sshd) among its own units.
lab_nodes_up() {
    local i n d dirs=() uuid line ok=0 want fifo pid batch= boot= up mac
    [ "$1" = --boot ] && { boot=boot; shift; }
    want=$#
    for i; do
        d=$LAB_DIR/nodes/node$i
        dirs+=("$d/etc.u" "$d/etc.w" "$d/root.u" "$d/root.w" "$d/var.u" "$d/var.w"
               "$d/tmp.u" "$d/tmp.w" "$LAB_CGROUP/node$i")
    done
    [ $# -gt 0 ] || return 0
    mkdir -p "${dirs[@]}" || return 1
    fifo=$LAB_DIR/nodes/.ready.$$
    mkfifo "$fifo" || return 1
    exec {rfd}<>"$fifo"      # read-write: never blocks, never sees EOF
    for i; do
        n=node$i d=$LAB_DIR/nodes/$n
        read -r uuid </proc/sys/kernel/random/uuid
        echo "$uuid" >"$d/boot_id"
        {
            for p in etc root var tmp; do
                echo "ovl-$n-$p /$p overlay lowerdir=/$p,upperdir=$d/$p.u,workdir=$d/$p.w 0 0"
            done
            echo "run-$n /run tmpfs mode=755 0 0"
            echo "sysfs-$n /sys sysfs defaults 0 0"
            echo "$d/boot_id /proc/sys/kernel/random/boot_id none bind,ro 0 0"
        } >"$d/fstab"
        up="addr add 10.77.0.$i/24 dev eth1"$'\n'
        [ "$LAB_IPV6" = 1 ] && up+="addr add fd77::$i/64 dev eth1 nodad"$'\n'
        up+="link set eth1 up"$'\n'
        if [ -n "$boot" ]; then
            printf '%s' "$up" >"$d/net-up.batch"
            up=
        fi
        # A fixed MAC per node, as a real NIC keeps across reboots: after lab-reboot the peers'
        # neighbour entries (and the node's IPv6 link-local address) still hold.
        mac=$(printf '02:4c:61:62:%02x:%02x' $((i / 256)) $((i % 256)))
        printf '%s' "link set lo up"$'\n'"link add eth1 address $mac type veth peer name d$i netns 1"$'\n'"$up" >"$d/net.batch"
        setsid unshare --net --mount --uts --propagation private \
            "$LAB_HOME/guest/node-holder" "$i" "$fifo" $boot </dev/null >"$d/holder.log" 2>&1 &
        echo $! >"$d/pid"
        disown $!       # no "Killed" notice from bash when lab-reboot ends it
        batch+="link set d$i master brdata"$'\n'"link set d$i up"$'\n'
    done
    while [ $ok -lt "$want" ] && read -r -t $((20 + want)) -u "$rfd" i line; do
        if [ "$line" = ok ]; then
            ok=$((ok + 1))
        else
            echo "lab: node$i failed: $line" >&2
            cat "$LAB_DIR/nodes/node$i/holder.log" >&2
            break
        fi
    done
    exec {rfd}<&-
    rm -f "$fifo"
    [ $ok -eq "$want" ] || { echo "lab: only $ok of $want nodes came up" >&2; return 1; }
    ip -batch - <<<"$batch"
}

# lab_node_down I [--keep-disk] : kill everything in node I; its namespaces and links go with
# it. Its disk (the upper layers of /etc /root /var) is deleted, or kept with --keep-disk.
lab_node_down() {
    local i=$1 cg=$LAB_CGROUP/node$1 tries=0 procs d=$LAB_DIR/nodes/node$1
    [ -e "$cg/cgroup.kill" ] && echo 1 >"$cg/cgroup.kill"
    # The netns is released asynchronously; its root-side veth end disappears last.
    while :; do
        procs=
        [ -e "$cg/cgroup.procs" ] && read -r procs <"$cg/cgroup.procs"
        [ -z "$procs" ] && [ ! -e "/sys/class/net/d$i" ] && break
        tries=$((tries + 1))
        [ $tries -gt 200 ] && { echo "lab: node$i does not go away" >&2; return 1; }
        sleep 0.05
    done
    [ -d "$cg" ] && rmdir "$cg"
    if [ "$2" = --keep-disk ]; then
        # /tmp starts empty, as on a Debian boot (tmpfiles.d: D /tmp); the rest is rewritten.
        rm -rf "$d/tmp.u" "$d/tmp.w" "$d/pid" "$d/net-up.batch"
    else
        rm -rf "$d"
    fi
}

# lab_nodes_boot I... : what nodes created by `lab_nodes_up --boot` run at boot (lab_boot.py,
# inside each node, concurrently). Prints one line per step; returns the worst status:
# 1 (the lab's own steps failed) > 3 (not emulated) > 2 (a unit failed) > 0.
lab_nodes_boot() {
    local i pid jobs=() rc=0 st
    for i; do
        read -r pid <"$LAB_DIR/nodes/node$i/pid" || return 1
        (
            echo "$BASHPID" >"$LAB_CGROUP/node$i/cgroup.procs" || exit 1
            # imported, not run as a script: its bytecode is compiled once per lab, not per boot
            exec nsenter -t "$pid" -n -m -u -- "$LAB_PYTHON" -I -S -c \
                'import sys; sys.path.insert(0, sys.argv[1]); import lab_boot; sys.exit(lab_boot.main(sys.argv[1:]))' \
                "$LAB_HOME/lib" "$i"
        ) &
        jobs+=($!)
    done
    for pid in "${jobs[@]}"; do
        wait "$pid"
        st=$?
        case $st:$rc in
            0:*) ;;
            3:1 | 2:[13]) ;;
            [23]:*) rc=$st ;;
            *) rc=1 ;;
        esac
    done
    return $rc
}

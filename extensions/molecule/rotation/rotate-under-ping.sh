#!/usr/bin/env bash
# rotate-under-ping.sh OUTDIR: rotate the mesh key (playbooks/rotate.yml with vars/new-key.yml,
# a 3 s grace) while every node pings every other node every 20 ms, all of it under
# lab-capture. Writes OUTDIR/capture.json (the packets seen on the wire), OUTDIR/pings.json
# (per ordered pair: sent, received, lost = sequence numbers up to the last answered one
# that got no answer) and OUTDIR/rotate.log. Exit status: the rotate playbook's.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=$1
mkdir -p "$out"

if [ "${2:-}" != --inner ]; then
    lab-capture -- "$0" "$out" --inner >"$out/capture.log"
    rc=$?
    tail -n 1 "$out/capture.log" >"$out/capture.json"
    exit "$rc"
fi

nodes=$(seq 1 "$LAB_NODES")
pids=()
for i in $nodes; do
    for j in $nodes; do
        [ "$i" = "$j" ] && continue
        lab-exec "node$i" ping -n -i 0.02 "10.77.0.$j" >"$out/ping-$i-$j.log" 2>&1 &
        pids+=($!)
    done
done
sleep 2
start=$SECONDS
ansible-playbook --inventory="$LAB_INVENTORY" -e "@$here/vars/new-key.yml" -e ipsec_rotate_grace=3 \
    "$here/../../../playbooks/rotate.yml" >"$out/rotate.log" 2>&1
rc=$?
echo "rotate.yml: exit $rc after $((SECONDS - start)) s" >>"$out/rotate.log"
sleep 2
kill -INT "${pids[@]}"
wait

{
    echo "["
    sep=
    for i in $nodes; do
        for j in $nodes; do
            [ "$i" = "$j" ] && continue
            printf '%s' "$sep"
            sep=,
            awk -v src="node$i" -v dst="node$j" '
                /icmp_seq=/ { match($0, /icmp_seq=[0-9]+/); s = substr($0, RSTART + 9, RLENGTH - 9) + 0
                              got[s] = 1; if (s > max) max = s }
                /packets transmitted/ { sent = $1; received = $4 }
                END { lost = 0; for (k = 1; k <= max; k++) if (!(k in got)) lost++
                      printf "{\"src\": \"%s\", \"dst\": \"%s\", \"sent\": %d, \"received\": %d, \"last_answered\": %d, \"lost\": %d}\n",
                             src, dst, sent, received, max, lost }' "$out/ping-$i-$j.log"
        done
    done
    echo "]"
} >"$out/pings.json"
exit "$rc"

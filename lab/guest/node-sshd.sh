# node_sshd I: start lab node I's sshd, inside the node, on its data address(es); needs
# /lab/config sourced. Sourced (sh) by node-holder when a node is created; lab_boot.py runs it as
# the node's ssh.service when the node boots after `lab-reboot --keep-disk`.
node_sshd() {
    listen="-o ListenAddress=10.77.0.$1"
    [ "$LAB_IPV6" = 1 ] && listen="$listen -o ListenAddress=[fd77::$1]:22"
    mkdir -p /run/sshd && /usr/sbin/sshd -f /lab/ssh/sshd_config $listen
}

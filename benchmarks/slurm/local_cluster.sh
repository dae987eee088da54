#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the SLURM tests and for trying lazyrich's SLURM arrays.
#
#   benchmarks/slurm/local_cluster.sh up       # install slurm-wlm + munge if missing (root, apt), start the daemons
#   benchmarks/slurm/local_cluster.sh status   # which of its daemons run, and sinfo
#   benchmarks/slurm/local_cluster.sh env      # the line to export so that sbatch/squeue/submitit find it
#   benchmarks/slurm/local_cluster.sh down     # stop its daemons by the PIDs it recorded
#
# Everything lives under LAZYRICH_SLURM_DIR (default /tmp/lazyrich-slurm): slurm.conf, the munge key and socket,
# the daemons' PID files, logs and state. It starts munged, slurmctld and slurmd (one partition, `debug`, this
# host with all its CPUs; SlurmUser=root, ProctrackType=proctrack/linuxproc, TaskPlugin=task/none, no accounting)
# and stops only those, by PID. `up` is idempotent: daemons already running are kept. Client commands need
# SLURM_CONF=<dir>/slurm.conf in their environment (`eval "$(local_cluster.sh env)"`).
set -euo pipefail

DIR=${LAZYRICH_SLURM_DIR:-/tmp/lazyrich-slurm}
CTLD_PORT=${LAZYRICH_SLURM_CTLD_PORT:-16817}
SLURMD_PORT=${LAZYRICH_SLURM_SLURMD_PORT:-16818}
NODE=$(hostname -s)
CONF=$DIR/slurm.conf
SOCKET=$DIR/munge/munge.socket.2
DAEMONS=(slurmd slurmctld munged)  # stopped in this order, started in the reverse

say() { echo "local_cluster: $*" >&2; }

alive() {  # alive NAME: its recorded PID runs that daemon
    local pidfile=$DIR/$1.pid pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -d "/proc/$pid" ] && grep -q "$1" "/proc/$pid/comm" 2>/dev/null
}

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "slurm-wlm and munge are not installed, and installing them needs root and apt-get; install them" \
            "(apt-get install slurm-wlm munge) and run this again."
        exit 2
    fi
    local start=$SECONDS
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
    say "installed slurm-wlm and munge with apt-get in $((SECONDS - start)) s"
}

configure() {
    mkdir -p "$DIR"/munge "$DIR"/ctld "$DIR"/slurmd "$DIR"/log
    chmod 700 "$DIR"/munge
    if [ ! -s "$DIR/munge.key" ]; then
        head -c 1024 /dev/urandom >"$DIR/munge.key"
    fi
    chmod 400 "$DIR/munge.key"
    local cpus mem
    cpus=$(nproc --all)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    cat >"$CONF.tmp" <<EOF
# Written by benchmarks/slurm/local_cluster.sh: a single-node cluster for lazyrich's tests.
ClusterName=lazyrich
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=30
MessageTimeout=30
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

start_daemons() {
    if ! alive munged; then
        munged --force --key-file="$DIR/munge.key" --socket="$SOCKET" --pid-file="$DIR/munged.pid" \
            --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    fi
    export SLURM_CONF=$CONF
    if ! alive slurmctld; then
        slurmctld -f "$CONF" -i  # -i: ignore state left by an earlier cluster under this folder
    fi
    if ! alive slurmd; then
        slurmd -f "$CONF" -N "$NODE"
    fi
}

wait_ready() {  # until the node is idle (or mixed/allocated: already running jobs), at most 120 s
    local state=""
    for _ in $(seq 240); do
        state=$(SLURM_CONF=$CONF sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true)
        case "$state" in
            idle* | mixed* | allocated* | completing*) return 0 ;;
            down* | drain*) SLURM_CONF=$CONF scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    say "the node did not come up (state: ${state:-unknown}); see $DIR/log/"
    exit 1
}

up() {
    local start=$SECONDS
    install
    configure
    start_daemons
    wait_ready
    say "up in $((SECONDS - start)) s: partition debug on $NODE; export SLURM_CONF=$CONF"
}

down() {
    local name pid
    for name in "${DAEMONS[@]}"; do
        if alive "$name"; then
            pid=$(cat "$DIR/$name.pid")
            kill "$pid"
            for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
            [ -d "/proc/$pid" ] && kill -9 "$pid"
            say "stopped $name (PID $pid)"
        fi
        rm -f "$DIR/$name.pid"
    done
}

status() {
    local name code=0
    for name in munged slurmctld slurmd; do
        if alive "$name"; then echo "$name: running (PID $(cat "$DIR/$name.pid"))"; else echo "$name: stopped"; code=3; fi
    done
    [ "$code" = 0 ] && SLURM_CONF=$CONF sinfo
    return $code
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 64 ;;
esac

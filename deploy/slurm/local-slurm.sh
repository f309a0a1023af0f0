#!/bin/bash
# A one-node Slurm cluster on this machine, for trying deploy/slurm/lagom.sbatch and for its test
# (tests/slurm.rs): munged, slurmctld and slurmd as root, everything under DIR, on the ports given.
#
#   deploy/slurm/local-slurm.sh start DIR [CTLD_PORT SLURMD_PORT]   # prints SLURM_CONF=DIR/slurm.conf
#   deploy/slurm/local-slurm.sh stop DIR
#
# Needs Debian's slurm-wlm (which brings munge). Exits 1 with the reason when Slurm cannot start
# here (no munge key, a daemon that dies, a node that never becomes idle).
set -euo pipefail
cmd=${1:?usage: local-slurm.sh start|stop DIR [CTLD_PORT SLURMD_PORT]}
dir=${2:?usage: local-slurm.sh start|stop DIR [CTLD_PORT SLURMD_PORT]}
case "$cmd" in
  stop)
    for pid in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munge/munged.pid; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
    exit 0 ;;
  start) ;;
  *) echo "local-slurm.sh: unknown command $cmd" >&2; exit 2 ;;
esac
ctld_port=${3:-16817}
slurmd_port=${4:-16818}
for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || { echo "local-slurm.sh: $tool is not installed (apt-get install slurm-wlm)" >&2; exit 1; }
done
key=/etc/munge/munge.key
[ -r "$key" ] || { echo "local-slurm.sh: no readable munge key at $key" >&2; exit 1; }
mkdir -p "$dir"/{state,spool,log,munge}
dir=$(realpath "$dir")
host=$(hostname -s)
munged --force --key-file="$key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/seed"
cat >"$dir/slurm.conf" <<CONF
ClusterName=lagomlocal
SlurmctldHost=$host
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmdSpoolDir=$dir/spool
StateSaveLocation=$dir/state
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 50); do
    if sinfo -h -o %t 2>/dev/null | grep -q idle; then
        echo "SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.2
done
echo "local-slurm.sh: the node never became idle; logs in $dir/log" >&2
exit 1

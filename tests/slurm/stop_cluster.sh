#!/usr/bin/env bash
# Stop the cluster that start_cluster.sh started in DIR: cancel its jobs, then end exactly the daemons
# whose pid files are in DIR (slurmd, slurmctld, munged), each given a bounded time to exit.
set -uo pipefail
dir=$(realpath "$1")
export SLURM_CONF="$dir/slurm.conf"

if [[ -f "$dir/slurmctld.pid" ]]; then
    timeout 10 scancel --user "$(id -un)" 2>/dev/null
    for _ in $(seq 20); do
        [[ -z $(timeout 5 squeue -h -t running,completing 2>/dev/null) ]] && break
        sleep 0.5
    done
fi

stop_pid_file() {
    local pid_file=$1 pid
    [[ -f "$pid_file" ]] || return 0
    pid=$(<"$pid_file")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 40); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null
}

stop_pid_file "$dir/slurmd.pid"
stop_pid_file "$dir/slurmctld.pid"
stop_pid_file "$dir/munge/munged.pid"
exit 0

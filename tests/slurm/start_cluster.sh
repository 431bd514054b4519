#!/usr/bin/env bash
# Start a private one-node SLURM cluster (munged, slurmctld, slurmd) with its files in DIR.
# Clients reach it with SLURM_CONF=DIR/slurm.conf and DIR/bin first on PATH (wrappers of srun and sbatch;
# DIR/sbatch.log lists every submission); tests/slurm/stop_cluster.sh DIR stops exactly the daemons
# started here (pid files in DIR). Needs root, slurm-wlm and munge.
set -euo pipefail
dir=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
ready_timeout_s=${READY_TIMEOUT_S:-60}

mkdir -p "$dir"/{state,spool,munge}
chmod 755 "$dir"
# munged runs as the munge user and wants a socket folder that only it may write to (others traverse it).
chown munge:munge "$dir/munge"
chmod 755 "$dir/munge"

# Declare the node as slurmd measures it (a mismatch drains the node), under the name localhost.
# Memory a little under the measured total: declaring more than slurmd finds drains the node too.
hardware=$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* *//')
memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hardware")
hardware=$(sed "s/RealMemory=[0-9]*/RealMemory=$((memory * 9 / 10))/" <<<"$hardware")
node="NodeName=localhost NodeAddr=127.0.0.1 $hardware"

# A free pair of ports, so the test never talks to another SLURM on the machine.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -e "s|@DIR@|$dir|g" -e "s|@NODE@|$node|" -e "s|@PORT_CTLD@|$port|" -e "s|@PORT_SLURMD@|$((port + 1))|" \
    "$here/slurm.conf.in" > "$dir/slurm.conf"

# slurmd 22.05 drops a GPU GRES with no device file (and drains the node): a fake character device
# (the null device's numbers) lets --gpus=1 be scheduled; jobs see CUDA_VISIBLE_DEVICES=0.
rm -f "$dir/fake-gpu0"
mknod "$dir/fake-gpu0" c 1 3
echo "NodeName=localhost Name=gpu File=$dir/fake-gpu0" > "$dir/gres.conf"
export SLURM_CONF="$dir/slurm.conf"

# Snakemake's job step drops every SLURM_* variable (SLURM_CONF too) before its inner srun, which then
# looks for /etc/slurm/slurm.conf, absent here. A wrapper in DIR/bin (put first on PATH by the test)
# names this cluster's config for it.
mkdir -p "$dir/bin"
printf '#!/bin/sh\nSLURM_CONF=%q exec %q "$@"\n' "$SLURM_CONF" "$(command -v srun)" > "$dir/bin/srun"
chmod 755 "$dir/bin/srun"
# sbatch through a wrapper that keeps each submission's options, one line each, in DIR/sbatch.log: tests
# read what every job asked for there (SLURM itself forgets finished jobs after MinJobAge).
printf '#!/bin/sh\nprintf "%%s\\n" "$*" >> %q\nexec %q "$@"\n' "$dir/sbatch.log" "$(command -v sbatch)" > "$dir/bin/sbatch"
chmod 755 "$dir/bin/sbatch"

runuser -u munge -- munged --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" --key-file=/etc/munge/munge.key
slurmctld -i
slurmd -N localhost

deadline=$((SECONDS + ready_timeout_s))
until [[ $(sinfo -h -n localhost -o %T 2>/dev/null) == idle ]]; do
    if ((SECONDS > deadline)); then
        echo "SLURM node not idle after ${ready_timeout_s}s:" >&2
        sinfo -N -l >&2 || true
        tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
        exit 1
    fi
    # A restarted node may come back INVAL or DRAIN.
    scontrol update NodeName=localhost State=RESUME 2>/dev/null || true
    sleep 1
done
echo "SLURM cluster ready: SLURM_CONF=$SLURM_CONF"

#!/usr/bin/env bash
# Stand up a real single-node SLURM cluster (with accounting and PBS-style
# torque wrappers) on a fresh Debian 12 machine, as root, without systemd.
#
#   scripts/setup-test-slurm.sh          install if needed, (re)start what is down, verify
#   scripts/setup-test-slurm.sh --stop   stop the daemons (packages and data stay)
#
# Result: cluster "testcluster", one node (this host, 8 CPUs declared), partition
# "debug" (default, no time limit), account "adaptive" (root's default account),
# slurmdbd accounting (sacct), MpiDefault=none (use srun --mpi=pmi2), and the
# torque wrappers qsub/qstat/qdel.
#
# Idempotent: when the cluster is already up it only checks it (about a second).
# Safe to run from several test sessions at once (one run at a time, via flock).
# Environment: SLURM_TEST_CPUS (CPUs the node declares, default 8; more than the
# real cores so that several small test jobs run at once).
#
# Everything logs to /var/log/slurm/. The facts behind the settings are in
# shared/DESIGN.md ("A real SLURM on a fresh Debian 12 machine").
set -euo pipefail

readonly CLUSTER=testcluster
readonly ACCOUNT=adaptive
readonly PARTITION=debug
readonly DB_NAME=slurm_acct_db
readonly DB_USER=slurm
readonly DB_PASS=slurmdbpass # loopback-only throwaway test database
readonly NODE_CPUS=${SLURM_TEST_CPUS:-8}
readonly PACKAGES=(slurm-wlm slurmdbd slurm-wlm-torque munge mariadb-server)
readonly CONF_DIR=/etc/slurm
readonly LOG_DIR=/var/log/slurm
readonly RUN_DIR=/run/slurm
readonly STATE_DIR=/var/lib/slurm
readonly LOCK_FILE=/run/setup-test-slurm.lock
readonly MUNGED_PID=/run/munge/munged.pid
readonly MARIADB_PID=/run/mysqld/mysqld.pid
readonly MARIADB_SOCKET=/run/mysqld/mysqld.sock
readonly SLURMDBD_PID=$RUN_DIR/slurmdbd.pid
readonly SLURMCTLD_PID=$RUN_DIR/slurmctld.pid
readonly SLURMD_PID=$RUN_DIR/slurmd.pid

readonly START_US=${EPOCHREALTIME/./}
log() {
    local us=$((${EPOCHREALTIME/./} - START_US))
    printf '[setup-test-slurm %3d.%ds] %s\n' $((us / 1000000)) $((us % 1000000 / 100000)) "$*"
}
die() {
    echo "setup-test-slurm: ERROR: $*" >&2
    exit 1
}
# Print the tail of a daemon's log before dying, so a failure explains itself.
die_with_log() {
    local logfile=$1
    shift
    if [[ -f $logfile ]]; then
        echo "---- last lines of $logfile ----" >&2
        tail -n 25 "$logfile" >&2
        echo "----" >&2
    fi
    die "$*"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.2 s until it succeeds.
wait_for() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
    log "$what: ok"
}

# proc_alive PID: the process exists and is not a zombie (kill -0 succeeds on a
# killed daemon until its parent reaps it, and pid 1 here may never do so).
proc_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) } # the field after "(comm) " is the state letter
    [[ ${stat:0:1} != [ZX] ]]
}

# pid_alive PIDFILE: the daemon that wrote PIDFILE still runs (same program, so
# a recycled pid does not count).
pid_alive() {
    local pidfile=$1 pid comm want
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    want=$(basename "$pidfile" .pid)
    [[ $want == mysqld ]] && want=mariadbd
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$want" ]] && proc_alive "$pid"
}

usage() {
    sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"
}

# ---------------------------------------------------------------- stop
stop_daemon() {
    local name=$1 pidfile=$2
    if pid_alive "$pidfile"; then
        local pid
        pid=$(cat "$pidfile")
        log "stopping $name (pid $pid)"
        kill "$pid"
        for _ in $(seq 50); do
            proc_alive "$pid" || break
            sleep 0.2
        done
        if proc_alive "$pid"; then
            log "$name did not stop in 10 s; killing it"
            kill -9 "$pid" 2>/dev/null || true
        fi
    else
        log "$name is not running"
    fi
    rm -f "$pidfile"
}

stop_all() {
    stop_daemon slurmd "$SLURMD_PID"
    stop_daemon slurmctld "$SLURMCTLD_PID"
    stop_daemon slurmdbd "$SLURMDBD_PID"
    stop_daemon mariadbd "$MARIADB_PID"
    stop_daemon munged "$MUNGED_PID"
}

# ---------------------------------------------------------------- install
install_packages() {
    local missing=()
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        log "packages already installed"
        return
    fi
    log "installing ${missing[*]}"
    # No init system here: keep package scripts from trying to start services.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local apt_log=$LOG_DIR/apt.log
    mkdir -p "$LOG_DIR"
    if ! apt-get update -q >"$apt_log" 2>&1; then
        ((created_policy)) && rm -f "$policy"
        die_with_log "$apt_log" "apt-get update failed"
    fi
    log "apt-get update done"
    if ! apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >>"$apt_log" 2>&1; then
        ((created_policy)) && rm -f "$policy"
        die_with_log "$apt_log" "apt-get install ${missing[*]} failed"
    fi
    ((created_policy)) && rm -f "$policy"
    log "packages installed"
}

# ---------------------------------------------------------------- configuration
# Print the slurm.conf we want. The node line comes from `slurmd -C` (memory, name),
# with more CPUs declared than the machine has so that several small jobs fit;
# SlurmdParameters=config_overrides makes slurmd accept the difference.
render_slurm_conf() {
    local hw host mem
    hw=$(slurmd -C | head -n 1)
    host=$(sed -n 's/.*NodeName=\([^ ]*\).*/\1/p' <<<"$hw")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    [[ -n $host && -n $mem ]] || die "cannot parse 'slurmd -C' output: $hw"
    cat <<EOF
# Written by scripts/setup-test-slurm.sh: single-node test cluster. Do not edit by hand.
# Real hardware (slurmd -C): $hw
ClusterName=$CLUSTER
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
# Without a short credential lifetime a requeued job waits 120 s before it can start.
AuthInfo=cred_expire=10
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$SLURMCTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
# Start jobs that become eligible later (requeued, --begin) within seconds, not 30-60 s.
SchedulerParameters=bf_interval=5,sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that asks for no memory would take the whole node.
DefMemPerCPU=1000
# Keep finished jobs visible to squeue/scontrol for 5 minutes.
MinJobAge=300
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldTimeout=120
SlurmdTimeout=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
NodeName=$host CPUs=$NODE_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$NODE_CPUS ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

render_slurmdbd_conf() {
    cat <<EOF
# Written by scripts/setup-test-slurm.sh. Do not edit by hand.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
DebugLevel=info
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$SLURMDBD_PID
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
}

# install_file MODE OWNER PATH: copy stdin to PATH if different; return 0 if it changed.
install_file() {
    local mode=$1 owner=$2 path=$3 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        chmod "$mode" "$path"
        chown "$owner" "$path"
        return 1
    fi
    install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$path"
    rm -f "$tmp"
    log "wrote $path"
    return 0
}

CONF_CHANGED=0
prepare_files() {
    id slurm >/dev/null 2>&1 || die "user 'slurm' missing after install"
    id munge >/dev/null 2>&1 || die "user 'munge' missing after install"
    id mysql >/dev/null 2>&1 || die "user 'mysql' missing after install"
    mkdir -p "$CONF_DIR" "$LOG_DIR" "$RUN_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" \
        /run/munge /run/mysqld
    chown slurm:slurm "$RUN_DIR" "$STATE_DIR" "$STATE_DIR/slurmctld"
    chown munge:munge /run/munge
    chown mysql:mysql /run/mysqld
    # munged refuses a log file in a directory owned by anyone but root or munge,
    # so the directory is root's and each daemon's file is owned by its user.
    chown root:root "$LOG_DIR"
    chmod 755 "$LOG_DIR"
    touch "$LOG_DIR"/{munged,mariadbd,slurmdbd,slurmctld,slurmd}.log
    chown munge:munge "$LOG_DIR/munged.log"
    chown mysql:mysql "$LOG_DIR/mariadbd.log"
    chown slurm:slurm "$LOG_DIR/slurmdbd.log" "$LOG_DIR/slurmctld.log"
    chmod 640 "$LOG_DIR/munged.log"

    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating munge key"
        mungekey --create --keyfile=/etc/munge/munge.key --force
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key

    if render_slurm_conf | install_file 644 root:root "$CONF_DIR/slurm.conf"; then
        CONF_CHANGED=1
    fi
    if render_slurmdbd_conf | install_file 600 slurm:slurm "$CONF_DIR/slurmdbd.conf"; then
        CONF_CHANGED=1
    fi
}

# ---------------------------------------------------------------- daemons
start_munged() {
    if pid_alive "$MUNGED_PID"; then return; fi
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGED_PID" \
        --log-file="$LOG_DIR/munged.log" 9>&- </dev/null >>"$LOG_DIR/munged.log" 2>&1 ||
        die_with_log "$LOG_DIR/munged.log" "munged failed to start"
    wait_for 10 "munge credential round trip" bash -c 'munge -n | unmunge' ||
        die_with_log "$LOG_DIR/munged.log" "munged does not answer"
}

mariadb_up() { mysqladmin --socket="$MARIADB_SOCKET" ping; }

start_mariadb() {
    if ! pid_alive "$MARIADB_PID"; then
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            log "initialising the mariadb data directory"
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql \
                >>"$LOG_DIR/mariadbd.log" 2>&1 ||
                die_with_log "$LOG_DIR/mariadbd.log" "mariadb-install-db failed"
        fi
        log "starting mariadbd"
        setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
            --pid-file="$MARIADB_PID" --socket="$MARIADB_SOCKET" \
            --bind-address=127.0.0.1 --log-error="$LOG_DIR/mariadbd.log" \
            --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
            9>&- </dev/null >>"$LOG_DIR/mariadbd.log" 2>&1 &
        wait_for 30 "mariadbd answers" mariadb_up ||
            die_with_log "$LOG_DIR/mariadbd.log" "mariadbd did not come up in 30 s"
    fi
    # Root connects through the unix socket (unix_socket auth); idempotent statements.
    local sql="CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;"
    mysql --socket="$MARIADB_SOCKET" -u root -e "$sql" ||
        die "could not create the accounting database/user in mariadb"
}

dbd_up() { sacctmgr -n -P show cluster format=cluster; }

start_slurmdbd() {
    if pid_alive "$SLURMDBD_PID" && ((CONF_CHANGED == 0)); then return; fi
    pid_alive "$SLURMDBD_PID" && stop_daemon slurmdbd "$SLURMDBD_PID"
    log "starting slurmdbd"
    setsid /usr/sbin/slurmdbd 9>&- </dev/null >>"$LOG_DIR/slurmdbd.log" 2>&1 ||
        die_with_log "$LOG_DIR/slurmdbd.log" "slurmdbd failed to start"
    wait_for 30 "slurmdbd answers" dbd_up ||
        die_with_log "$LOG_DIR/slurmdbd.log" "slurmdbd did not answer in 30 s"
}

# sacctmgr -i add fails when the entity exists, so look before adding.
ensure_accounting() {
    if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
        log "sacctmgr: adding cluster $CLUSTER"
        sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed"
    fi
    if ! sacctmgr -n -P show account format=account | grep -qx "$ACCOUNT"; then
        log "sacctmgr: adding account $ACCOUNT"
        sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" \
            description="adaptive-snakemake tests" organization=tests >/dev/null ||
            die "sacctmgr add account failed"
    fi
    local user
    for user in root ${SUDO_USER:-}; do
        if ! sacctmgr -n -P show assoc where user="$user" account="$ACCOUNT" \
            format=account | grep -qx "$ACCOUNT"; then
            log "sacctmgr: adding user $user to account $ACCOUNT"
            sacctmgr -i add user "$user" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null ||
                die "sacctmgr add user $user failed"
        fi
        if ! sacctmgr -n -P show user "$user" format=defaultaccount | grep -qx "$ACCOUNT"; then
            sacctmgr -i modify user where name="$user" set defaultaccount="$ACCOUNT" \
                >/dev/null || die "sacctmgr: could not set default account of $user"
        fi
    done
}

start_slurmctld() {
    if pid_alive "$SLURMCTLD_PID" && ((CONF_CHANGED == 0)); then return; fi
    pid_alive "$SLURMCTLD_PID" && stop_daemon slurmctld "$SLURMCTLD_PID"
    log "starting slurmctld"
    setsid /usr/sbin/slurmctld 9>&- </dev/null >>"$LOG_DIR/slurmctld.log" 2>&1 ||
        die_with_log "$LOG_DIR/slurmctld.log" "slurmctld failed to start"
    wait_for 30 "slurmctld answers" scontrol ping ||
        die_with_log "$LOG_DIR/slurmctld.log" "slurmctld did not answer in 30 s"
}

start_slurmd() {
    if pid_alive "$SLURMD_PID" && ((CONF_CHANGED == 0)); then return; fi
    pid_alive "$SLURMD_PID" && stop_daemon slurmd "$SLURMD_PID"
    log "starting slurmd"
    setsid /usr/sbin/slurmd 9>&- </dev/null >>"$LOG_DIR/slurmd.log" 2>&1 ||
        die_with_log "$LOG_DIR/slurmd.log" "slurmd failed to start"
}

# The node is usable when sinfo shows it idle, mixed or allocated, with no
# trailing flag (* = not responding, ~ = powered off, # = powering up, ...).
node_state() { timeout 10 sinfo -h -N -p "$PARTITION" -o '%T'; }
node_ready() { node_state | grep -qxE 'idle|mixed|allocated|completing'; }

wait_node_ready() {
    if ! wait_for 20 "node $(hostname -s) ready" node_ready; then
        # A node left DOWN/DRAINED by an earlier crash: put it back in service once.
        log "node state is '$(node_state)'; resuming it"
        scontrol update nodename="$(hostname -s)" state=resume || true
        wait_for 20 "node ready after resume" node_ready ||
            die_with_log "$LOG_DIR/slurmd.log" "node not ready: $(sinfo -N -l 2>&1)"
    fi
}

smoke_test() {
    timeout 20 sacct -n -X -S now-1hours >/dev/null 2>&1 ||
        die "sacct does not answer (slurmdbd?)"
    log "sacct answers"
    local running
    running=$(timeout 10 squeue -h -t RUNNING -o %i | wc -l)
    if ((running > 0)); then
        # Jobs of other test sessions run, so slurmd works; an srun could wait for them.
        log "$running jobs running on the node; skipping the srun check"
        return
    fi
    local out
    out=$(timeout 60 srun -N1 -n1 -p "$PARTITION" -t 1 --immediate=50 -J setup-smoke \
        hostname 2>&1) || die "srun -N1 hostname failed: $out"
    log "srun -N1 works (ran on ${out##*$'\n'})"
}

all_running() {
    pid_alive "$MUNGED_PID" && pid_alive "$MARIADB_PID" && pid_alive "$SLURMDBD_PID" &&
        pid_alive "$SLURMCTLD_PID" && pid_alive "$SLURMD_PID"
}

main() {
    case ${1:-} in
    -h | --help)
        usage
        exit 0
        ;;
    --stop)
        [[ $EUID -eq 0 ]] || die "must run as root"
        exec 9>"$LOCK_FILE"
        flock 9
        stop_all
        exit 0
        ;;
    "") ;;
    *)
        usage >&2
        die "unknown argument: $1"
        ;;
    esac
    [[ $EUID -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"
    command -v flock >/dev/null || die "flock (util-linux) missing"
    # fd 9 holds the lock; every daemon is started with 9>&- so none inherits it.
    exec 9>"$LOCK_FILE"
    if ! flock -n 9; then
        log "waiting for another setup-test-slurm.sh run to finish"
        flock -w 300 9 || die "another setup-test-slurm.sh run held $LOCK_FILE for 5 minutes"
    fi

    install_packages
    prepare_files
    if all_running && ((CONF_CHANGED == 0)) && node_ready 2>/dev/null &&
        timeout 10 sacct -n -X -S now-1minutes >/dev/null 2>&1; then
        log "cluster already up: partition $PARTITION, account $ACCOUNT ($(node_state))"
        exit 0
    fi
    start_munged
    start_mariadb
    start_slurmdbd
    ensure_accounting
    start_slurmctld
    start_slurmd
    wait_node_ready
    smoke_test
    log "cluster up: cluster $CLUSTER, partition $PARTITION, account $ACCOUNT, $NODE_CPUS CPUs"
}

main "$@"

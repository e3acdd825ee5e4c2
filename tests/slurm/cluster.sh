#!/usr/bin/env bash
# A real one-node SLURM cluster for vidmine's tests and CI: munge, MariaDB, slurmdbd (so that
# sacct works as on production clusters), slurmctld and slurmd, on Debian 12 as root, without
# systemd. The facts behind each choice are in shared/slurm/RECIPE.md.
#
#   cluster.sh install   apt packages only
#   cluster.sh start     install if missing, write the configs, start what is not running
#   cluster.sh stop      cancel every job, stop the daemons this script started
#   cluster.sh status    which daemons run, and the node's state (exit 3 if not all up)
#
# Pids, spool, slurmctld state, logs and the database live in $VIDMINE_SLURM_STATE
# (default /var/tmp/vidmine-slurm), never in the repository. System paths written:
# /etc/slurm/slurm.conf, /etc/slurm/slurmdbd.conf, /run/munge.
set -euo pipefail

STATE=${VIDMINE_SLURM_STATE:-/var/tmp/vidmine-slurm}
DB_PORT=${VIDMINE_SLURM_DB_PORT:-16033} # our own MariaDB, away from a system one on 3306
DB_PASS=slurm-ci-only                   # a throwaway database reachable on 127.0.0.1 only
CLUSTER=vidmine
PACKAGES=(munge slurm-wlm slurmctld slurmd slurm-client slurmdbd mariadb-server procps)
MARK="# Written by vidmine tests/slurm/cluster.sh; rewritten on every start."
SLURM_CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MUNGE_PID=/run/munge/munged.pid

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

need_root() { [[ $EUID -eq 0 ]] || die "needs root (it installs packages and starts daemons)"; }

# --- packages ------------------------------------------------------------------------------

missing_packages() {
	local p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
	done
}

# Package scripts must not start munge or MariaDB on a host that has a service manager: this
# script starts its own, with its own paths. Debian containers already have a policy-rc.d.
block_autostart() {
	[[ -e /usr/sbin/policy-rc.d ]] && return 0
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
}

cmd_install() {
	need_root
	local missing
	missing=$(missing_packages)
	[[ -z $missing ]] && return 0
	command -v apt-get >/dev/null || die "apt-get not found: this script needs Debian 12"
	block_autostart
	log "installing: $(echo "$missing" | tr '\n' ' ')"
	mkdir -p "$STATE/log"
	local apt_log=$STATE/log/apt.log
	# shellcheck disable=SC2086  # one package name per word
	if ! {
		apt-get update -o Acquire::Retries=3 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
				-o Acquire::Retries=3 $missing
	} >"$apt_log" 2>&1; then
		tail -n 20 "$apt_log" >&2
		die "apt-get failed (full log: $apt_log)"
	fi
}

# --- helpers -------------------------------------------------------------------------------

# A pid is running (a zombie is not: without systemd, PID 1 may reap it only seconds later).
running() {
	local stat
	stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]
}

# A pidfile names a running process of the given command.
alive() {
	local pidfile=$1 comm=$2 pid
	[[ -s $pidfile ]] || return 1
	pid=$(<"$pidfile")
	running "$pid" && [[ $(ps -o comm= -p "$pid") == "$comm" ]]
}

wait_for() {
	local what=$1 seconds=$2
	shift 2
	local i
	for ((i = 0; i < seconds * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	die "$what not ready after ${seconds}s (logs in $STATE/log)"
}

# Writes content $2 to file $1 if it changed; returns 0 when it did.
write_if_changed() {
	local file=$1 tmp
	tmp=$(mktemp)
	printf '%s\n' "$2" >"$tmp"
	if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
		rm -f "$tmp"
		return 1
	fi
	# Keep a file that someone else wrote, once.
	if [[ -f $file ]] && ! grep -qF "$MARK" "$file" && [[ ! -e $STATE/backup/${file##*/} ]]; then
		cp -p "$file" "$STATE/backup/"
	fi
	mv "$tmp" "$file"
	chmod 644 "$file"
	return 0
}

# SIGTERM, wait for the pid to go (a new slurmctld started at once can race the old one).
kill_pidfile() {
	local pidfile=$1 comm=$2 pid i
	alive "$pidfile" "$comm" || {
		rm -f "$pidfile"
		return 0
	}
	pid=$(<"$pidfile")
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		running "$pid" || break
		sleep 0.2
	done
	if running "$pid"; then kill -9 "$pid"; fi
	rm -f "$pidfile"
	log "stopped $comm ($pid)"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

make_dirs() {
	mkdir -p "$STATE"/{run,log,backup,slurmctld,slurmd,mysql-run}
	chown slurm:slurm "$STATE/run" "$STATE/log" "$STATE/slurmctld"
	chown mysql:mysql "$STATE/mysql-run"
	install -d -o munge -g munge -m 755 /run/munge
}

# --- configs -------------------------------------------------------------------------------

# Topology from slurmd -C; RealMemory at 90 % of MemTotal, since a node that reports less
# memory than slurm.conf claims is drained.
node_line() {
	local host=$1 cpus sockets cores threads mem_kb
	read -r cpus sockets cores threads < <(slurmd -C | head -1 | tr ' ' '\n' | awk -F= '
		$1=="CPUs"{c=$2} $1=="SocketsPerBoard"{s=$2} $1=="CoresPerSocket"{k=$2}
		$1=="ThreadsPerCore"{t=$2} END{print c, s, k, t}')
	mem_kb=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)
	[[ -n $cpus && -n $mem_kb ]] || die "cannot read the node's topology from slurmd -C"
	echo "NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Sockets=$sockets" \
		"CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$((mem_kb * 9 / 10 / 1024))" \
		"State=UNKNOWN"
}

slurm_conf() {
	local host=$1 node=$2
	cat <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
# A requeued (preempted) job waits cred_expire seconds before it may start again: 120 by default,
# which the requeue test would spend waiting.
AuthInfo=cred_expire=30
CryptoType=crypto/munge
MpiDefault=none
# No cgroups in containers: track processes by parent pid, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=10
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without it a job that gives no --mem takes the whole node.
DefMemPerCPU=500
# squeue shows finished jobs this long; the executor's squeue status mode relies on it.
MinJobAge=300
KillWait=10
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
JobRequeue=1
# Reject a job the node can never run at sbatch time, instead of leaving it pending forever.
EnforcePartLimits=ALL
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
$node
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP PriorityTier=1
# Jobs here preempt (requeue) those in debug: lets a test cause a real preemption.
PartitionName=urgent Nodes=$host Default=NO MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
}

dbd_conf() {
	local host=$1
	cat <<EOF
$MARK
AuthType=auth/munge
DbdHost=$host
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
}

# --- daemons -------------------------------------------------------------------------------

start_munge() {
	if alive "$MUNGE_PID" munged; then
		return 0
	fi
	# munged wants its log owned by munge, so it keeps its default log file.
	runuser -u munge -- /usr/sbin/munged
	wait_for munged 10 alive "$MUNGE_PID" munged
	cp "$MUNGE_PID" "$STATE/run/munged.pid" # marks it as ours, for stop
	log "started munged"
}

sql() { mariadb --socket="$STATE/mysql-run/mysqld.sock" -u root -e "$1"; }

start_mariadb() {
	local pidfile=$STATE/mysql-run/mariadbd.pid
	alive "$pidfile" mariadbd && return 0
	if [[ ! -d $STATE/mysql/mysql ]]; then
		mariadb-install-db --user=mysql --datadir="$STATE/mysql" --skip-test-db \
			>"$STATE/log/mariadb-install.log" 2>&1
	fi
	setsid mariadbd --user=mysql --datadir="$STATE/mysql" --port="$DB_PORT" \
		--bind-address=127.0.0.1 --socket="$STATE/mysql-run/mysqld.sock" --pid-file="$pidfile" \
		--log-error="$STATE/log/mariadb.log" --innodb-buffer-pool-size=256M \
		--innodb-log-file-size=48M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
	wait_for mariadbd 30 sql 'SELECT 1'
	local who
	for who in "'slurm'@'localhost'" "'slurm'@'127.0.0.1'"; do
		sql "CREATE USER IF NOT EXISTS $who IDENTIFIED BY '$DB_PASS';
			GRANT ALL ON slurm_acct_db.* TO $who;"
	done
	log "started mariadbd"
}

start_slurmdbd() {
	local changed=$1
	if alive "$STATE/run/slurmdbd.pid" slurmdbd; then
		[[ $changed == yes ]] || return 0
		kill_pidfile "$STATE/run/slurmdbd.pid" slurmdbd
	fi
	slurmdbd
	wait_for slurmdbd 30 port_open 6819
	log "started slurmdbd"
}

# slurmctld and slurmd read slurm.conf at start; a changed file needs a restart, not a
# reconfigure (AccountingStorageType, for example).
start_slurm_daemon() {
	local name=$1 changed=$2
	if alive "$STATE/run/$name.pid" "$name"; then
		[[ $changed == yes ]] || return 0
		kill_pidfile "$STATE/run/$name.pid" "$name"
	fi
	"$name"
	wait_for "$name" 20 alive "$STATE/run/$name.pid" "$name"
	log "started $name"
}

node_ready() {
	local state
	state=$(sinfo -h -n "$1" -o %T)
	case $state in
	idle | mixed | allocated | completing) return 0 ;;
	down | drained | draining) scontrol update NodeName="$1" State=RESUME ;;
	esac
	return 1
}

cluster_registered() { sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; }

cmd_start() {
	cmd_install
	make_dirs
	local host node slurm_changed=no dbd_changed=no
	host=$(hostname -s)
	node=$(node_line "$host")
	if write_if_changed "$SLURM_CONF" "$(slurm_conf "$host" "$node")"; then slurm_changed=yes; fi
	if write_if_changed "$DBD_CONF" "$(dbd_conf "$host")"; then dbd_changed=yes; fi
	chown slurm:slurm "$DBD_CONF"
	chmod 600 "$DBD_CONF" # slurmdbd refuses a config that others can read
	start_munge
	start_mariadb
	start_slurmdbd "$dbd_changed"
	start_slurm_daemon slurmctld "$slurm_changed"
	start_slurm_daemon slurmd "$slurm_changed"
	wait_for "node $host" 60 node_ready "$host"
	wait_for "accounting" 30 cluster_registered
	log "up: node $host, partitions debug (default) and urgent, accounting via slurmdbd"
}

cancel_all_jobs() {
	alive "$STATE/run/slurmctld.pid" slurmctld || return 0
	local jobs
	jobs=$(squeue -h -o %A)
	[[ -z $jobs ]] && return 0
	# shellcheck disable=SC2086  # one job id per word
	scancel $jobs || true
	wait_for "job cancellation" 30 no_running_jobs
}

no_running_jobs() { [[ -z $(squeue -h -t RUNNING,COMPLETING -o %A) ]]; }

cmd_stop() {
	need_root
	cancel_all_jobs
	kill_pidfile "$STATE/run/slurmd.pid" slurmd
	kill_pidfile "$STATE/run/slurmctld.pid" slurmctld
	kill_pidfile "$STATE/run/slurmdbd.pid" slurmdbd
	kill_pidfile "$STATE/mysql-run/mariadbd.pid" mariadbd
	# munged only if this script started it (another user of munge may have been there first).
	if [[ -f $STATE/run/munged.pid ]] && cmp -s "$STATE/run/munged.pid" "$MUNGE_PID"; then
		kill_pidfile "$MUNGE_PID" munged
	fi
	rm -f "$STATE/run/munged.pid"
}

cmd_status() {
	local up=0 name pidfile
	for name in munged mariadbd slurmdbd slurmctld slurmd; do
		case $name in
		munged) pidfile=$MUNGE_PID ;;
		mariadbd) pidfile=$STATE/mysql-run/mariadbd.pid ;;
		*) pidfile=$STATE/run/$name.pid ;;
		esac
		if alive "$pidfile" "$name"; then
			echo "$name: running ($(<"$pidfile"))"
		else
			echo "$name: stopped"
			up=3
		fi
	done
	[[ $up -eq 0 ]] && sinfo -N -o '%N %P %T %c %m'
	return "$up"
}

case ${1:-} in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
	echo "usage: $0 install|start|stop|status" >&2
	exit 2
	;;
esac

#!/usr/bin/env bash
# Installs what the test suite talks to for real: the file-system tools the
# round-trip tests use (attr for extended attributes), systemd-analyze, which
# checks the agent's unit file, and the other programs below. PostgreSQL is not
# set up here: scripts/test.sh runs a throwaway cluster of its own
# (scripts/test-postgres.sh), and the S3 servers (moto, SeaweedFS) come with the
# dev dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v setfattr >/dev/null 2>&1 || need+=(attr)
# repo mount's test: libfuse2 (fusepy) and fusermount (fuse3); /dev/fuse comes with the kernel.
[ -e /usr/lib/x86_64-linux-gnu/libfuse.so.2 ] || ldconfig -p | grep -q 'libfuse.so.2 ' || need+=(libfuse2)
command -v fusermount3 >/dev/null 2>&1 || command -v fusermount >/dev/null 2>&1 || need+=(fuse3)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v snmptrap >/dev/null 2>&1 || need+=(snmp)
command -v smartctl >/dev/null 2>&1 || [ -x /usr/sbin/smartctl ] || need+=(smartmontools)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || need+=(rsyslog)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v swaks >/dev/null 2>&1 || need+=(swaks)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

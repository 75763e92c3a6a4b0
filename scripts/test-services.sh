#!/usr/bin/env bash
# Installs and starts what the test suite talks to for real: PostgreSQL, and the
# file-system tools the round-trip tests use (attr for extended attributes), and
# systemd-analyze, which checks the agent's unit file.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v setfattr >/dev/null 2>&1 || need+=(attr)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v snmptrap >/dev/null 2>&1 || need+=(snmp)
command -v smartctl >/dev/null 2>&1 || [ -x /usr/sbin/smartctl ] || need+=(smartmontools)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || need+=(rsyslog)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -x scripts/ensure-postgres.sh ]; then
  scripts/ensure-postgres.sh >/dev/null
fi

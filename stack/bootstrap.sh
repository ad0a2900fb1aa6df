#!/usr/bin/env bash
# Installs the Debian packages the local stack runs (redis-server, postgresql) when missing.
# Java and Maven are the machine's; Kafka's jars are fetched by `runway stack up` itself.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# the dashboard's browser tests drive Debian's Chromium (Playwright never downloads one here)
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-liberation)
# `promtool check rules` on deploy/prometheus/ (tests/unit/test_grafana_alerts.py); Debian ships
# it only in `prometheus`, whose server systemd starts on :9090 where it runs (README, "Grafana")
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]} from Debian's packages" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for tool in java mvn; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bootstrap: '$tool' is missing: install a JDK 17+ and Maven (apt-get install openjdk-17-jdk-headless maven)." >&2; exit 1; }
done

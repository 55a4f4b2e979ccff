#!/usr/bin/env bash
# System packages the test suite needs; CI runs this as root before the tests. Idempotent: it
# installs only what is missing and says nothing else.
#   chromium, fonts-dejavu-core: tests/test_report.py renders OUT/report/index.html headless
#   and checks the screenshot.
set -euo pipefail
packages=(chromium fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-system: installed ${missing[*]}"

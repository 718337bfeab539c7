#!/usr/bin/env bash
# One-shot, idempotent machine setup for coat on Debian 12: the system packages the labs and tests
# drive (Open vSwitch, NATS, capture and traffic tools, Mininet) and the npm dependencies.
# Called by `npm run setup`, by the quick-start commands and by .ci/run. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  openvswitch-switch openvswitch-common openvswitch-testcontroller # the switches coat drives
  nats-server                       # control plane between controller and agents
  iproute2 ethtool kmod             # namespaces, veths, tc shaping, offload settings
  tcpdump tshark libpcap-dev        # captures for the verification report; pcap addon headers
  iperf3 sockperf netcat-openbsd    # traffic and baselines
  mininet                           # lab/mininet
  iputils-ping                      # ping: lab and Mininet connectivity checks
  iptables                          # tcp-repair test: one-way drop so bytes are in flight at the dump
  criu                              # optional executor (runs where `criu check` passes)
  podman runc                       # podman executor (argv checked against its --help; needs CRIU)
  build-essential python3           # node-gyp for the TCP_REPAIR addon and pcap/raw-socket
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing system packages (${missing[*]}); run as root or install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The openvswitch packages try to start services; there is no systemd here, so their postinst
  # may complain: policy-rc.d keeps them from starting daemons we start ourselves per lab host.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm install" >&2
  npm install --no-audit --no-fund --loglevel=error
fi
# The CLI runs from dist/ (bin/coat.js); build it whenever sources are newer than the last build.
if [ ! -f dist/src/cli/main.js ] || [ -n "$(find src lab -newer dist/src/cli/main.js -name '*.ts' -print -quit)" ]; then
  echo "setup: build" >&2
  npm run --silent build
fi
echo "setup: ready" >&2

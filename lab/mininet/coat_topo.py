#!/usr/bin/python3
"""coat's overlay in Mininet: one Open vSwitch bridge (user-space datapath, OVS "netdev") per COAT
host, the endpoints as Mininet hosts with the topology's IPs and MACs, and coat as the remote
controller. The switches are joined by point-to-point links where the namespace lab has VXLAN
tunnels: each link port has the OpenFlow number of the tunnel port it stands for, so coat programs
these bridges with exactly the flows it gives the lab's integration bridges.

Started by `coat lab mininet` (which runs Open vSwitch and `coat controller` for it and writes
the plan this script reads); by hand:

    OVS_RUNDIR=DIR /usr/bin/python3 lab/mininet/coat_topo.py PLAN.json [--test]

PLAN.json: {"controller": {"ip", "port"}, "switches": [{"name", "dpid", "host"}],
            "hosts": [{"name", "ip", "mac", "switch", "port"}],
            "links": [{"a", "b", "portA", "portB"}]}
--test: ping every endpoint pair, print one JSON line with the results, exit 0 when all pass.
"""
import json
import sys

from mininet.cli import CLI
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch, RemoteController
from mininet.topo import Topo


class CoatTopo(Topo):
    """The plan's switches, hosts and inter-switch links, with the plan's port numbers."""

    def build(self, plan):  # pylint: disable=arguments-differ
        for s in plan["switches"]:
            # datapath "user": datapath_type=netdev (no OVS kernel module here); OpenFlow 1.3 only.
            self.addSwitch(s["name"], dpid=s["dpid"], datapath="user", protocols="OpenFlow13", failMode="secure")
        for h in plan["hosts"]:
            self.addHost(h["name"], ip=h["ip"], mac=h["mac"])
            self.addLink(h["name"], h["switch"], port2=h["port"])
        for l in plan["links"]:
            self.addLink(l["a"], l["b"], port1=l["portA"], port2=l["portB"])


def ping_all(net, plan):
    """Every ordered pair of endpoints, one ping each; returns (ok, failures)."""
    ok, failures = 0, []
    for a in plan["hosts"]:
        for b in plan["hosts"]:
            if a is b:
                continue
            out = net.get(a["name"]).cmd("ping -c 1 -W 2 %s" % b["ip"].split("/")[0])
            if " 1 received" in out:
                ok += 1
            else:
                failures.append("%s -> %s" % (a["name"], b["name"]))
    return ok, failures


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.stderr.write(__doc__)
        return 64
    with open(args[0], encoding="utf-8") as f:
        plan = json.load(f)
    setLogLevel("warning" if "--test" in sys.argv else "info")
    ctl = plan["controller"]
    net = Mininet(
        topo=CoatTopo(plan=plan),
        switch=OVSSwitch,
        controller=lambda name: RemoteController(name, ip=ctl["ip"], port=ctl["port"]),
        autoSetMacs=False,
        autoStaticArp=False,  # ARP is coat's job: its controller answers for every endpoint
        waitConnected=True,
    )
    net.start()
    try:
        for h in plan["hosts"]:
            node = net.get(h["name"])
            intf = node.defaultIntf()
            # TCP through a netdev (userspace) bridge needs full checksums from the senders.
            node.cmd("ethtool -K %s tx off" % intf)
            node.cmd("ip link set %s mtu 1400" % intf)
        if "--test" in sys.argv:
            ok, failures = ping_all(net, plan)
            # ping once more: the first round may include ARP resolution through the controller
            if failures:
                ok, failures = ping_all(net, plan)
            print(json.dumps({"pairs": ok, "failures": failures}), flush=True)
            return 0 if not failures else 1
        CLI(net)
        return 0
    finally:
        net.stop()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""coat's overlay in Mininet: one Open vSwitch bridge (user-space datapath, OVS "netdev") per COAT
host, the endpoints as Mininet hosts with the topology's IPs and MACs, and coat as the remote
controller. The switches reach each other over VXLAN: each switch's tunnel port is linked to a
VTEP, a Mininet host whose namespace bridges that link with a Linux VXLAN device (VNI from the
topology, static FDB: remote endpoint MAC -> its host's underlay address) and whose second link,
carrying the host's underlay address, goes to an underlay bridge (a standalone OVS bridge, no
controller). This is the lab's `tunnel: kernel` layout, so coat programs these switches with
exactly the flows it gives the lab's integration bridges.

Started by `coat lab mininet` (which runs Open vSwitch and `coat controller` for it and writes
the plan this script reads); by hand:

    OVS_RUNDIR=DIR /usr/bin/python3 lab/mininet/coat_topo.py PLAN.json [--test]

PLAN.json: {"controller": {"ip", "port"}, "switches": [{"name", "dpid", "host"}],
            "hosts": [{"name", "ip", "mac", "switch", "port"}],
            "vteps": [{"name", "switch", "port", "underlayIp", "vni", "fdb": [{"mac", "dst"}]}],
            "fabric": {"name", "dpid"}}
--test: ping every endpoint pair, print one JSON line with the results and each VTEP's VXLAN
packet counters, exit 0 when all pass.
"""
import json
import sys

from mininet.cli import CLI
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSBridge, OVSSwitch, RemoteController
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
        if plan["vteps"]:
            fabric = plan["fabric"]
            self.addSwitch(fabric["name"], cls=OVSBridge, dpid=fabric["dpid"], datapath="user")
            for v in plan["vteps"]:
                self.addHost(v["name"], ip=None)
                self.addLink(v["name"], v["switch"], port2=v["port"])  # VTEP eth0: the tunnel port
                self.addLink(v["name"], fabric["name"])  # VTEP eth1: the underlay


def start_vtep(node, v):
    """Bridges eth0 (to the switch) with a VXLAN device on the underlay address of eth1 (RFC 7348).

    nolearning plus one static FDB entry per remote endpoint MAC: frames go to the right VTEP and
    nothing is flooded over the underlay; ARP never crosses it (coat answers ARP at the switch).
    Checksum offload off: the frames cross user-space OVS bridges on both sides (machine fact)."""
    eth0, eth1 = "%s-eth0" % v["name"], "%s-eth1" % v["name"]
    local = v["underlayIp"].split("/")[0]
    cmds = [
        "ip addr flush dev %s" % eth0,
        "ip addr flush dev %s" % eth1,
        "ip addr add %s dev %s" % (v["underlayIp"], eth1),
        "ip link add vxk type vxlan id %d local %s dstport 4789 nolearning" % (v["vni"], local),
        "ip link add br0 type bridge",
        "ip link set %s master br0" % eth0,
        "ip link set vxk master br0",
    ]
    cmds += ["bridge fdb append %s dev vxk dst %s" % (f["mac"], f["dst"]) for f in v["fdb"]]
    cmds += ["ip link set %s up" % d for d in (eth0, eth1, "vxk", "br0")]
    cmds += ["ethtool -K %s tx off" % d for d in (eth0, eth1)]
    for c in cmds:
        out = node.cmd(c + " && echo CMD-OK")
        if "CMD-OK" not in out:
            raise RuntimeError("VTEP %s: %s: %s" % (v["name"], c, out.strip()))


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
        for v in plan["vteps"]:
            start_vtep(net.get(v["name"]), v)
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
            # what crossed each VTEP's VXLAN device: proof the pings took the overlay
            vxlan = {}
            for v in plan["vteps"]:
                node = net.get(v["name"])
                stat = lambda n: int(node.cmd("cat /sys/class/net/vxk/statistics/%s" % n).strip() or "0")  # pylint: disable=cell-var-from-loop
                vxlan[v["switch"]] = {"txPackets": stat("tx_packets"), "rxPackets": stat("rx_packets")}
            print(json.dumps({"pairs": ok, "failures": failures, "vxlan": vxlan}), flush=True)
            return 0 if not failures else 1
        CLI(net)
        return 0
    finally:
        net.stop()


if __name__ == "__main__":
    sys.exit(main())

"""Minimal os-ken ARP responder, written for the ofload comparison (docs/loadgen.md).

OpenFlow 1.3. On switch connect: installs a table-miss entry sending everything to the
controller. On packet-in: if the frame is an ARP request for GATEWAY_IP, answers with a
PACKET_OUT carrying the ARP reply (sender GATEWAY_MAC) out of the port it came in on.
GATEWAY_IP may be a comma-separated list (one per subnet) via the OSKEN_ARP_GATEWAYS
environment variable; default: every x.y.z.1 address (the gateways `servswitch gen-topology`
writes).
"""

import os

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import arp, ethernet, ether_types, packet
from os_ken.ofproto import ofproto_v1_3

GATEWAY_MAC = "02:53:53:00:00:01"
_GW = os.environ.get("OSKEN_ARP_GATEWAYS", "")
GATEWAYS = set(g.strip() for g in _GW.split(",") if g.strip())


def is_gateway(ip):
    if GATEWAYS:
        return ip in GATEWAYS
    return ip.endswith(".1")


class ArpResponder(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        dp.send_msg(parser.OFPFlowMod(datapath=dp, priority=0,
                                      match=parser.OFPMatch(), instructions=inst))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        pkt = packet.Packet(msg.data)
        eth = pkt.get_protocol(ethernet.ethernet)
        if eth is None or eth.ethertype != ether_types.ETH_TYPE_ARP:
            return
        req = pkt.get_protocol(arp.arp)
        if req is None or req.opcode != arp.ARP_REQUEST or not is_gateway(req.dst_ip):
            return
        in_port = msg.match["in_port"]
        reply = packet.Packet()
        reply.add_protocol(ethernet.ethernet(ethertype=ether_types.ETH_TYPE_ARP,
                                             dst=req.src_mac, src=GATEWAY_MAC))
        reply.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=GATEWAY_MAC,
                                   src_ip=req.dst_ip, dst_mac=req.src_mac,
                                   dst_ip=req.src_ip))
        reply.serialize()
        dp.send_msg(parser.OFPPacketOut(datapath=dp, buffer_id=ofp.OFP_NO_BUFFER,
                                        in_port=ofp.OFPP_CONTROLLER,
                                        actions=[parser.OFPActionOutput(in_port)],
                                        data=reply.data))

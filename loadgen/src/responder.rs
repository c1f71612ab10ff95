//! The switch side of the protocol: answers to what the controller sends (echo, barrier, role, config, stats, desc).

use crate::*;

/// The switch's answers to what the controller sends (other than the workload's responses).
pub(crate) fn answer(sw: &SwInfo, m: &Message, st: &mut Stats, out: &mut Vec<u8>) {
    let reply = |body| Message::new(m.xid, body);
    let r = match &m.body {
        Body::EchoRequest(d) => Some(reply(Body::EchoReply(d.clone()))),
        Body::FeaturesRequest => Some(reply(Body::FeaturesReply(SwitchFeatures {
            datapath_id: sw.dpid,
            n_buffers: 0,
            n_tables: 254,
            auxiliary_id: 0,
            capabilities: 0x4f,
            reserved: 0,
        }))),
        Body::GetConfigRequest => Some(reply(Body::GetConfigReply(SwitchConfig {
            flags: 0,
            miss_send_len: 0xffff,
        }))),
        Body::BarrierRequest => {
            st.barriers += 1;
            Some(reply(Body::BarrierReply))
        }
        Body::RoleRequest(r) => Some(reply(Body::RoleReply(*r))),
        Body::GetAsyncRequest => Some(reply(Body::GetAsyncReply(
            servswitch::emu::switch::DEFAULT_ASYNC,
        ))),
        Body::MultipartRequest(req) => {
            let body = match &req.body {
                MultipartRequestBody::PortDesc => Some(MultipartReplyBody::PortDesc(
                    (1..=sw.nports)
                        .map(|p| servswitch::emu::switch::port(sw.dpid, p))
                        .collect::<Vec<Port>>(),
                )),
                MultipartRequestBody::Flow(_) => {
                    st.stats_requests += 1;
                    Some(MultipartReplyBody::Flow(Vec::new()))
                }
                MultipartRequestBody::Aggregate(_) => {
                    st.stats_requests += 1;
                    Some(MultipartReplyBody::Aggregate(AggregateStats {
                        packet_count: 0,
                        byte_count: 0,
                        flow_count: 0,
                    }))
                }
                MultipartRequestBody::Desc => Some(MultipartReplyBody::Desc(Box::new(Desc {
                    mfr_desc: "ofload".into(),
                    hw_desc: "emulated switch".into(),
                    sw_desc: env!("CARGO_PKG_VERSION").into(),
                    serial_num: format!("{:016x}", sw.dpid),
                    dp_desc: sw.name.clone(),
                }))),
                _ => None,
            };
            Some(match body {
                Some(body) => reply(Body::MultipartReply(MultipartReply { flags: 0, body })),
                None => {
                    let bytes = m.to_bytes();
                    let data = Bytes::copy_from_slice(bytes.get(..64).unwrap_or(&bytes));
                    reply(Body::Error(ErrorMsg::new(1, 2, data)))
                }
            })
        }
        Body::FlowMod(_) | Body::GroupMod(_) | Body::MeterMod(_) => {
            st.flow_mods += 1;
            None
        }
        Body::Hello(_) | Body::SetConfig(_) | Body::SetAsync(_) | Body::PacketOut(_) => None,
        _ => {
            st.other += 1;
            None
        }
    };
    if let Some(r) = r {
        r.emit(out);
    }
}

//! One emulated switch's task: handshake, then keep its window of requests in flight and check what comes back.

use crate::*;

pub(crate) async fn switch(ctx: Arc<Ctx>, idx: usize, mut gen: Gen) -> Result<Stats> {
    let sw = ctx.switches.get(idx).context("switch index")?;
    let mut st = Stats::new();
    let sock = TcpStream::connect(ctx.addr)
        .await
        .with_context(|| format!("connecting to {}", ctx.addr))?;
    sock.set_nodelay(true)?;
    let mut sock = sock;
    let (mut rd, wr) = sock.split();
    let mut rbuf = BytesMut::with_capacity(256 * 1024);
    let mut wbuf = Vec::with_capacity(64 * 1024);
    // How much of wbuf the socket has taken.
    let mut woff = 0;
    Message::new(1, Body::Hello(ofp13::Hello::of13())).emit(&mut wbuf);
    let mut fl = InFlight(VecDeque::with_capacity(ctx.window.min(4096)));
    let (mut port_desc_done, mut up) = (false, false);
    let mut features_at: Option<Instant> = None;
    let mut drained = false;
    // Wakes the loop at least every 20 ms (time-outs, start, drain) with one timer, not a
    // new timer per turn.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !ctx.stop.load(Relaxed) {
        let now = Instant::now();
        // servswitch ends its handshake with PORT_DESC and a BARRIER; a controller that
        // sends no barrier (os-ken) is taken as up 300 ms after the FEATURES_REPLY.
        if !up && features_at.is_some_and(|t| now.duration_since(t) > Duration::from_millis(300)) {
            up = true;
            ctx.up.fetch_add(1, Relaxed);
        }
        if up {
            while let Some((_, t)) = fl.0.front() {
                if now.duration_since(*t) < ctx.timeout {
                    break;
                }
                if let Some((k, _)) = fl.0.pop_front() {
                    if ctx.measuring.load(Relaxed) || ctx.draining.load(Relaxed) {
                        st.timeouts += 1;
                    }
                    // A migration that timed out is taken as done (it may still complete).
                    if let Some(s) = ctx.vm_state.get(k) {
                        let v = s.load(Relaxed);
                        if v == MOVING_AWAY || v == MOVING_HOME {
                            ctx.vm_done(
                                k,
                                if v == MOVING_AWAY {
                                    AWAY_IDLE
                                } else {
                                    HOME_IDLE
                                },
                            );
                        }
                    }
                }
            }
            let sending = ctx.go.load(Relaxed) && !ctx.draining.load(Relaxed);
            // Unbounded (window 0): requests are made while the socket takes them, so
            // what is in flight is bounded by the kernel's buffers, as in cbench.
            while sending && fl.0.len() < ctx.window && wbuf.len() - woff < UNSENT_MAX {
                let Some((k, bytes)) = gen.next(&ctx, sw, now) else {
                    break;
                };
                wbuf.extend_from_slice(&bytes);
                fl.0.push_back((k, now));
                if ctx.measuring.load(Relaxed) {
                    st.sent += 1;
                }
            }
        }
        // Write what the socket takes now; the rest waits until it is writable, and reading
        // goes on meanwhile (neither side can wedge the other with full buffers).
        while woff < wbuf.len() {
            match wr.try_write(wbuf.get(woff..).unwrap_or_default()) {
                Ok(n) => woff += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        if woff == wbuf.len() {
            wbuf.clear();
            woff = 0;
        }
        if !drained && fl.0.is_empty() && ctx.draining.load(Relaxed) {
            drained = true;
            ctx.drained.fetch_add(1, Relaxed);
        }
        let wake = ctx.wake.get(idx).context("wake")?;
        let unsent = woff < wbuf.len();
        rbuf.reserve(64 * 1024);
        // Read through `read_buf` (tokio's `poll_read`): a read that does not fill the buffer
        // marks the socket drained, so the next turn waits for data instead of asking the
        // kernel once more to hear "would block" (`ready` + `try_read_buf` cost one extra
        // recvfrom per answer in latency mode, as tcp_floor's client never does).
        let n = tokio::select! {
            r = rd.read_buf(&mut rbuf) => r?,
            r = wr.writable(), if unsent => {
                r?;
                continue; // the top of the loop writes
            }
            _ = wake.notified(), if ctx.workload == Workload::Migration => continue,
            _ = tick.tick() => continue,
        };
        if n == 0 {
            if ctx.stop.load(Relaxed) {
                break;
            }
            bail!("{}: the controller closed the connection", sw.name);
        }
        let now = Instant::now();
        ctx.last_rx_us
            .store(now.duration_since(ctx.t0).as_micros() as u64, Relaxed);
        while let Some(frame) = ofp13::message::split_frame(&mut rbuf, MAX_MESSAGE_LEN)? {
            // The ARP workload's answers are checked on the wire bytes, without decoding
            // them into messages; anything not plainly right takes the full check below.
            if let Gen::Arp { by_ip, .. } = &gen {
                if let Some(k) = good_arp_reply(sw, by_ip, &frame) {
                    match fl.take(k) {
                        Some(t) => record(&ctx, &mut st, t, now),
                        None => wrong(&ctx, &mut st, || {
                            format!("unsolicited ARP reply to host {k}")
                        }),
                    }
                    continue;
                }
            }
            let m = Message::parse(&frame)?;
            if matches!(&m.body, Body::MultipartRequest(r) if matches!(r.body, MultipartRequestBody::PortDesc))
            {
                port_desc_done = true;
            }
            if matches!(m.body, Body::FeaturesRequest) && features_at.is_none() {
                features_at = Some(now);
            }
            if !up && port_desc_done && matches!(m.body, Body::BarrierRequest) {
                up = true;
                ctx.up.fetch_add(1, Relaxed);
            }
            answer(sw, &m, &mut st, &mut wbuf);
            check(&ctx, sw, &mut gen, &mut fl, &m, &mut st, now);
        }
    }
    Ok(st)
}

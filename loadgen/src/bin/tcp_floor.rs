//! The floor under any controller benchmark on this machine: ofload's exchange pattern with
//! a server that does no work at all.
//!
//! N connections over loopback TCP; the client (one thread, tokio current_thread, as ofload)
//! keeps `--window` messages of `--size` bytes in flight per connection; the server (tokio
//! multi-thread with `--workers`, as servswitch) sends every whole message straight back. What
//! remains is the kernel's TCP and the runtimes' wake-ups: a controller that decides anything
//! cannot answer faster than this. `--window 1` is cbench's latency mode.
//!
//! ```sh
//! cargo run --release -p ofload --bin tcp_floor -- --connections 16 --window 1
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
#[command(about = "Loopback TCP request/response rate with a server that does no work")]
struct Args {
    /// Connections (ofload's switches).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Messages in flight per connection (1: latency mode).
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// Bytes per message (an ARP packet-in is 102, its packet-out 108).
    #[arg(long, default_value_t = 104)]
    size: usize,
    /// Server worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

/// Sends back every whole message of `size` bytes it reads.
async fn echo(mut s: TcpStream, size: usize) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    loop {
        let n = s.read(buf.get_mut(have..).unwrap_or_default()).await?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        let whole = have / size * size;
        s.write_all(buf.get(..whole).unwrap_or_default()).await?;
        buf.copy_within(whole..have, 0);
        have -= whole;
    }
}

/// Keeps `window` messages in flight; counts each one that comes back.
async fn client(
    addr: std::net::SocketAddr,
    a: Arc<(usize, usize)>,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let (size, window) = *a;
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let msgs = vec![1u8; size * window];
    let mut buf = vec![0u8; 64 * 1024];
    s.write_all(&msgs).await?;
    let mut have = 0;
    while !stop.load(Relaxed) {
        let n = s.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "server closed");
        have += n;
        let whole = have / size;
        have -= whole * size;
        done.fetch_add(whole as u64, Relaxed);
        s.write_all(msgs.get(..whole * size).unwrap_or_default())
            .await?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.size > 0 && args.window > 0 && args.size * args.window <= 64 * 1024,
        "--size and --window must be positive, size x window at most 64 KiB"
    );
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()?;
    let listener = server.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let size = args.size;
    server.spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(echo(s, size));
        }
    });
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rate = rt.block_on(async {
        let shape = Arc::new((args.size, args.window));
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| tokio::spawn(client(addr, shape.clone(), done.clone(), stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
        let (a, t) = (done.load(Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
        let rate = (done.load(Relaxed) - a) as f64 / t.elapsed().as_secs_f64();
        stop.store(true, Relaxed);
        for t in tasks {
            if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(1), t).await {
                return Err(e).context("a connection failed");
            }
        }
        Ok(rate)
    })?;
    println!(
        "RESULT connections={} window={} size={} workers={} exchanges_per_s={rate:.0}",
        args.connections, args.window, args.size, args.workers
    );
    Ok(())
}

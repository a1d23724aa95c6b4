//! Benchmark: exec round-trip of `true` and 256 MiB upload/download against the agent over
//! its unix socket. Run: `cargo run --release -p cove-agent --example agent_bench`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::Request;
use hyper_util::rt::TokioIo;

type Sender<B> = hyper::client::conn::http1::SendRequest<B>;

async fn connect<B>(sock: &std::path::Path) -> Sender<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::UnixStream::connect(sock).await.unwrap();
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    tx
}

/// CPU time (user + system) this process has used, in seconds.
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = f
        .get(11..13)
        .map(|v| v.iter().filter_map(|x| x.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let work = dir.path().join("work");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let cfg = cove_agent::AgentConfig {
        env: BTreeMap::new(),
        user: "daytona".into(),
    };
    let opts = cove_agent::AgentOptions {
        work_dir: Some(work.clone()),
        ..Default::default()
    };
    tokio::spawn(cove_agent::serve(
        listener,
        cove_agent::router_with(cfg, opts),
    ));

    // exec `true`, one keep-alive connection.
    let mut tx: Sender<Full<Bytes>> = connect(&sock).await;
    let n = std::env::var("EXEC_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut lat = Vec::with_capacity(n);
    for i in 0..n + 50 {
        let req = Request::post("/process/execute")
            .header("host", "agent")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"command":"true"}"#)))
            .unwrap();
        tx.ready().await.unwrap();
        let t = Instant::now();
        let resp = tx.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if i >= 50 {
            lat.push(t.elapsed());
        }
        assert_eq!(&body[..], br#"{"exitCode":0,"result":""}"#);
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "exec true: n={n} p50={:?} p90={:?} p99={:?}",
        p(0.5),
        p(0.9),
        p(0.99)
    );

    // upload 256 MiB as a streamed multipart body.
    let size: u64 = 256 << 20;
    let chunk = Bytes::from(vec![0x5au8; 1 << 20]);
    let b = "benchboundary0123456789";
    let head = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"files[0].path\"\r\n\r\nbig.bin\r\n--{b}\r\nContent-Disposition: form-data; name=\"files[0].file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{b}--\r\n");
    let mut frames: Vec<Result<Frame<Bytes>, std::io::Error>> =
        vec![Ok(Frame::data(Bytes::from(head)))];
    frames.extend((0..(size >> 20)).map(|_| Ok(Frame::data(chunk.clone()))));
    frames.push(Ok(Frame::data(Bytes::from(tail))));
    let body = StreamBody::new(futures_util::stream::iter(frames));
    let mut up: Sender<StreamBody<_>> = connect(&sock).await;
    let req = Request::post("/files/bulk-upload")
        .header("host", "agent")
        .header("content-type", format!("multipart/form-data; boundary={b}"))
        .body(body)
        .unwrap();
    let (t, c) = (Instant::now(), cpu_secs());
    let resp = up.send_request(req).await.unwrap();
    let status = resp.status();
    resp.into_body().collect().await.unwrap();
    let d = t.elapsed();
    assert_eq!(status, 200);
    assert_eq!(std::fs::metadata(work.join("big.bin")).unwrap().len(), size);
    let cpu = cpu_secs() - c;
    println!(
        "upload 256 MiB: {d:?} = {:.0} MiB/s (cpu {cpu:.2}s, client+agent)",
        mib_s(size, d)
    );

    for (label, req) in [
        (
            "bulk-download",
            Request::post("/files/bulk-download")
                .header("host", "agent")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(br#"{"paths":["big.bin"]}"#)))
                .unwrap(),
        ),
        (
            "download (raw)",
            Request::get("/files/download?path=big.bin")
                .header("host", "agent")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        ),
    ] {
        tx.ready().await.unwrap();
        let (t, c) = (Instant::now(), cpu_secs());
        let resp = tx.send_request(req).await.unwrap();
        let mut body = resp.into_body();
        let mut got = 0u64;
        while let Some(f) = body.frame().await {
            if let Ok(d) = f.unwrap().into_data() {
                got += d.len() as u64;
            }
        }
        let d = t.elapsed();
        assert!(got >= size);
        let cpu = cpu_secs() - c;
        println!(
            "{label} 256 MiB: {d:?} = {:.0} MiB/s (cpu {cpu:.2}s, client+agent)",
            mib_s(size, d)
        );
    }
}

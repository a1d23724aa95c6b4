//! `cove bench …`: latency and throughput through the HTTP API, printed as medians and p99s.
//!
//! - `create`: sequential create → first exec → delete.
//! - `exec`: round trips of `true` on one started sandbox.
//! - `files`: upload and download of one large file (MiB/s each way).
//! - `stop-start`: stop and start latency of one sandbox.
//! - `archive`: archive and start-from-archive of a sandbox with SIZE MiB of files
//!   (`bench_archive.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use cove_sdk::{CreateSandbox, ExecuteRequest};

use crate::client::connect;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Create N sandboxes one after another, run `true` in each, delete it; print latencies.
    Create {
        /// How many sandboxes to measure.
        #[arg(long, default_value_t = 20)]
        count: usize,
        /// Untimed sandboxes first (e.g. to build the default image).
        #[arg(long, default_value_t = 1)]
        warmup: usize,
    },
    /// Run `true` N times in one started sandbox; print round-trip latencies.
    Exec {
        #[arg(long, default_value_t = 200)]
        count: usize,
        #[arg(long, default_value_t = 20)]
        warmup: usize,
    },
    /// Stop then start one sandbox N times; print the latency of each (files kept).
    StopStart {
        #[arg(long, default_value_t = 30)]
        count: usize,
    },
    /// Upload then download one file of SIZE MiB (streamed both ways); print MiB/s.
    Files {
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
        /// Repetitions of each direction.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Archive a stopped sandbox holding SIZE MiB of written files, then start it from the
    /// archive; print seconds for each and the total (checksum verified after each restore).
    Archive {
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

pub async fn run(api_url: &str, cmd: BenchCmd) -> anyhow::Result<u8> {
    match cmd {
        BenchCmd::Create { count, warmup } => create(api_url, count, warmup).await,
        BenchCmd::Exec { count, warmup } => exec(api_url, count, warmup).await,
        BenchCmd::Files { size_mib, rounds } => files(api_url, size_mib, rounds).await,
        BenchCmd::StopStart { count } => stop_start(api_url, count).await,
        BenchCmd::Archive { size_mib, rounds } => {
            crate::bench_archive::run(api_url, size_mib, rounds).await
        }
    }
}

async fn exec(api_url: &str, count: usize, warmup: usize) -> anyhow::Result<u8> {
    let c = connect(api_url)?;
    let sb = c
        .create(&CreateSandbox::default())
        .await
        .with_context(|| format!("bench: create at {api_url} failed"))?;
    let truth = ExecuteRequest {
        command: "true".into(),
        ..Default::default()
    };
    let mut rtt = Vec::with_capacity(count);
    let result = async {
        for i in 0..warmup + count {
            let t0 = Instant::now();
            let out = c
                .exec(&sb.id, &truth)
                .await
                .with_context(|| format!("bench: exec in {}", sb.id))?;
            anyhow::ensure!(out.exit_code == 0, "bench: `true` exited {}", out.exit_code);
            if i >= warmup {
                rtt.push(t0.elapsed());
            }
        }
        Ok(())
    }
    .await;
    c.delete(&sb.id)
        .await
        .with_context(|| format!("bench: delete {}", sb.id))?;
    result?;
    println!("exec `true` round trips: {count} (after {warmup} warm-up)");
    println!("exec:               {}", summary(&mut rtt));
    Ok(0)
}

async fn stop_start(api_url: &str, count: usize) -> anyhow::Result<u8> {
    let c = connect(api_url)?;
    let sb = c
        .create(&CreateSandbox::default())
        .await
        .with_context(|| format!("bench: create at {api_url} failed"))?;
    let (mut stops, mut starts) = (Vec::with_capacity(count), Vec::with_capacity(count));
    let result = async {
        for _ in 0..count {
            let t0 = Instant::now();
            c.stop(&sb.id)
                .await
                .with_context(|| format!("bench: stop {}", sb.id))?;
            let t1 = Instant::now();
            c.start(&sb.id)
                .await
                .with_context(|| format!("bench: start {}", sb.id))?;
            stops.push(t1 - t0);
            starts.push(t1.elapsed());
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    c.delete(&sb.id)
        .await
        .with_context(|| format!("bench: delete {}", sb.id))?;
    result?;
    println!("stop → start of one sandbox: {count} rounds");
    println!("stop:               {}", summary(&mut stops));
    println!("start:              {}", summary(&mut starts));
    Ok(0)
}

async fn files(api_url: &str, size_mib: u64, rounds: usize) -> anyhow::Result<u8> {
    let c = connect(api_url)?;
    // Source on tmpfs where possible so the client's disk is not what is measured.
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .context("bench: temp dir")?;
    let local = dir.path().join("payload.bin");
    let size = size_mib << 20;
    {
        let mut block = vec![0u8; 1 << 20];
        for (i, b) in block.iter_mut().enumerate() {
            *b = (i * 31 % 251) as u8;
        }
        let mut f = std::fs::File::create(&local).context("bench: create payload")?;
        for _ in 0..size_mib {
            std::io::Write::write_all(&mut f, &block).context("bench: write payload")?;
        }
    }
    let sb = c
        .create(&CreateSandbox::default())
        .await
        .with_context(|| format!("bench: create at {api_url} failed"))?;
    let mut up = Vec::new();
    let mut down = Vec::new();
    let result = async {
        for _ in 0..rounds {
            let t0 = Instant::now();
            c.upload_file(&sb.id, "bench.bin", &local)
                .await
                .context("bench: upload")?;
            up.push(t0.elapsed());
            let t0 = Instant::now();
            let n = c
                .download_into(&sb.id, "bench.bin", &mut tokio::io::sink())
                .await
                .context("bench: download")?;
            down.push(t0.elapsed());
            anyhow::ensure!(n == size, "bench: downloaded {n} bytes, expected {size}");
        }
        Ok(())
    }
    .await;
    c.delete(&sb.id)
        .await
        .with_context(|| format!("bench: delete {}", sb.id))?;
    result?;
    let rate = |d: &Duration| size_mib as f64 / d.as_secs_f64();
    let show = |v: &mut Vec<Duration>| {
        v.sort();
        format!(
            "median {:.0} MiB/s  best {:.0} MiB/s  worst {:.0} MiB/s",
            rate(&v[v.len() / 2]),
            rate(&v[0]),
            rate(&v[v.len() - 1])
        )
    };
    println!("file of {size_mib} MiB, {rounds} rounds each way");
    println!("upload:             {}", show(&mut up));
    println!("download:           {}", show(&mut down));
    Ok(0)
}

async fn create(api_url: &str, count: usize, warmup: usize) -> anyhow::Result<u8> {
    let c = connect(api_url)?;
    let req = CreateSandbox {
        labels: BTreeMap::from([("cove-bench".to_string(), "1".to_string())]),
        ..Default::default()
    };
    let truth = ExecuteRequest {
        command: "true".into(),
        ..Default::default()
    };
    let mut create = Vec::with_capacity(count);
    let mut first_exec = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let t0 = Instant::now();
        let sb = c
            .create(&req)
            .await
            .with_context(|| format!("bench: create #{i} at {api_url} failed"))?;
        let t1 = Instant::now();
        let out = c
            .exec(&sb.id, &truth)
            .await
            .with_context(|| format!("bench: exec `true` in {} failed", sb.id))?;
        let t2 = Instant::now();
        c.delete(&sb.id)
            .await
            .with_context(|| format!("bench: delete {} failed", sb.id))?;
        anyhow::ensure!(
            out.exit_code == 0,
            "bench: `true` exited {} in {}",
            out.exit_code,
            sb.id
        );
        if i >= warmup {
            create.push(t1 - t0);
            first_exec.push(t2 - t0);
        }
    }
    println!("sandboxes: {count} (after {warmup} warm-up)");
    println!("create:             {}", summary(&mut create));
    println!("create→first exec:  {}", summary(&mut first_exec));
    Ok(0)
}

/// Nearest-rank percentile `p` (0..=100) of sorted `v`.
fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

fn summary(v: &mut [Duration]) -> String {
    v.sort();
    format!(
        "p50 {}  p99 {}  min {}  max {}",
        ms(percentile(v, 50.0)),
        ms(percentile(v, 99.0)),
        ms(v.first().copied().unwrap_or_default()),
        ms(v.last().copied().unwrap_or_default()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&v[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}

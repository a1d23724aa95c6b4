//! `cove bench archive`: archive and start-from-archive (restore + boot) of a sandbox holding
//! SIZE MiB of freshly written, incompressible files, timed through the HTTP API; the files'
//! checksum is verified after every restore.

use std::time::{Duration, Instant};

use anyhow::Context;
use cove_sdk::{Client, CreateSandbox, ExecuteRequest, Sandbox};

use crate::client::connect;

/// Files the payload is split into.
const FILES: u64 = 16;

async fn sh(c: &Client, sb: &Sandbox, cmd: &str) -> anyhow::Result<String> {
    let req = ExecuteRequest {
        command: cmd.into(),
        timeout: Some(3600),
        ..Default::default()
    };
    let out = c
        .exec(&sb.id, &req)
        .await
        .with_context(|| format!("bench: exec in {}", sb.id))?;
    anyhow::ensure!(
        out.exit_code == 0,
        "bench: `{cmd}` exited {}: {}",
        out.exit_code,
        out.result
    );
    Ok(out.result)
}

pub async fn run(api_url: &str, size_mib: u64, rounds: usize) -> anyhow::Result<u8> {
    anyhow::ensure!(
        size_mib > 0 && rounds > 0,
        "bench: --size-mib and --rounds must be > 0"
    );
    let c = connect(api_url)?;
    let sb = c
        .create(&CreateSandbox {
            auto_stop_interval: Some(0),
            ..Default::default()
        })
        .await
        .with_context(|| format!("bench: create at {api_url} failed"))?;
    let (mut archive, mut restore) = (Vec::new(), Vec::new());
    let result = async {
        // Several files of random bytes: nothing for zstd to squeeze.
        let per_file = size_mib.div_ceil(FILES);
        let (full, rest) = (size_mib / per_file, size_mib % per_file);
        let mut cmd = format!(
            "mkdir -p ~/bench && cd ~/bench && for i in $(seq 1 {full}); do \
             head -c {per_file}M /dev/urandom > f$i; done"
        );
        if rest > 0 {
            cmd.push_str(&format!(" && head -c {rest}M /dev/urandom > f0"));
        }
        sh(&c, &sb, &cmd).await?;
        let sum = "cat ~/bench/f* | sha256sum";
        let want = sh(&c, &sb, sum).await?;
        c.stop(&sb.id).await.context("bench: stop")?;
        for i in 0..rounds {
            let t0 = Instant::now();
            let a = c.archive(&sb.id).await.context("bench: archive")?;
            let t1 = Instant::now();
            anyhow::ensure!(a.state.as_deref() == Some("archived"), "bench: {a:?}");
            c.start(&sb.id).await.context("bench: start from archive")?;
            let t2 = Instant::now();
            archive.push(t1 - t0);
            restore.push(t2 - t1);
            eprintln!(
                "round {}: archive {:.2}s  start-from-archive {:.2}s",
                i + 1,
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64()
            );
            let got = sh(&c, &sb, sum).await?;
            anyhow::ensure!(
                got == want,
                "bench: checksum after restore {got:?}, want {want:?}"
            );
            c.stop(&sb.id).await.context("bench: stop")?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    c.delete(&sb.id)
        .await
        .with_context(|| format!("bench: delete {}", sb.id))?;
    result?;
    let total: Vec<Duration> = archive.iter().zip(&restore).map(|(a, r)| *a + *r).collect();
    println!("archive → start of a sandbox with {size_mib} MiB of written files: {rounds} rounds (checksum verified)");
    println!("archive:            {}", secs(archive));
    println!("start-from-archive: {}", secs(restore));
    println!("total:              {}", secs(total));
    Ok(0)
}

/// Median, min and max in seconds.
fn secs(mut v: Vec<Duration>) -> String {
    v.sort();
    let s = |d: &Duration| format!("{:.2}s", d.as_secs_f64());
    format!(
        "median {}  min {}  max {}",
        s(&v[v.len() / 2]),
        s(&v[0]),
        s(&v[v.len() - 1])
    )
}

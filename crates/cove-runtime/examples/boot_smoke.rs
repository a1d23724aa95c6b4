//! Boots one sandbox from a given layer dir and runs a command in it, printing the boot time:
//! `cargo run --example boot_smoke -- INIT_EXE LAYER [CMD]` (INIT_EXE: cove-runtime-test-init).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use cove_runtime::{ImageRef, Runtime, RuntimeConfig, SandboxSpec};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = std::env::temp_dir().join(format!("cove-boot-smoke-{}", std::process::id()));
    let rt = Runtime::new(RuntimeConfig {
        data_dir: data.clone(),
        images_dir: "/nonexistent".into(),
        init_exe: args[1].clone().into(),
    })
    .expect("runtime");
    let spec = SandboxSpec {
        id: "smoke".into(),
        image: ImageRef {
            name: "smoke".into(),
            layers: vec![args[2].clone().into()],
            entrypoint: Vec::new(),
        },
        env: BTreeMap::new(),
        user: "root".into(),
        cpu: 1,
        memory_mib: 256,
        disk_gib: 1,
        pids_max: 100,
        no_new_privs: false,
        mounts: Vec::new(),
    };
    let t = std::time::Instant::now();
    let r = rt.start(&spec).await;
    println!("start: {:?} in {:?}", r, t.elapsed());
    if let Ok(r) = r {
        let mut s = UnixStream::connect(&r.socket).unwrap();
        s.write_all(
            args.get(3)
                .map_or("hostname; id; cat /proc/self/uid_map; ls /", |s| s)
                .as_bytes(),
        )
        .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        println!("{out}");
    }
    let t = std::time::Instant::now();
    println!(
        "destroy: {:?} in {:?}",
        rt.destroy("smoke").await,
        t.elapsed()
    );
    let _ = std::fs::remove_dir_all(data);
}

//! Object storage for sandbox archives (the `object_store` crate): a local directory by
//! default (`<data-dir>/objects`), or any S3-compatible service with `s3://bucket[/prefix]`
//! configured from the standard `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`).
//!
//! Uploads and downloads are streamed: a blocking producer (the packer) writes into a
//! [`Write`] whose chunks are uploaded as parts of a multipart upload while it keeps going,
//! and a blocking consumer (the unpacker) reads a [`Read`] fed by the download. An upload is
//! durable when [`Objects::upload`] returns: S3 acknowledges the completed multipart upload,
//! and a local object is fsynced (file and directory) first.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::prefix::PrefixStore;
use object_store::{GetResultPayload, ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::sync::mpsc;

/// Bytes per uploaded part (S3 wants at least 5 MiB for every part but the last).
const PART: usize = 16 << 20;
/// Parts uploading at once.
const IN_FLIGHT: usize = 4;
/// A local upload starts writeback of what it has written every this many bytes, so the
/// final fsync has little left to wait for.
const WRITEBACK_EVERY: u64 = 64 << 20;

/// Errors of object storage.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("invalid --object-store {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("object store {store}: {op} {key}: {source}")]
    Store {
        store: String,
        op: &'static str,
        key: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("object store {store}: {op} {key}: {source}")]
    Io {
        store: String,
        op: &'static str,
        key: String,
        #[source]
        source: io::Error,
    },
    /// The producer or consumer of a stream failed (its own message).
    #[error("{0}")]
    Stream(String),
}

/// Where archives are kept.
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// Set for a local directory: its objects are fsynced and read as plain files.
    local: Option<Arc<LocalFileSystem>>,
    /// The URL (or directory) for messages.
    desc: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.desc)
    }
}

impl Objects {
    /// Opens `url` (`s3://bucket[/prefix]` or `file:///abs/dir`), or the directory `default`
    /// (created if missing) when there is none.
    pub fn open(url: Option<&str>, default: &std::path::Path) -> Result<Self, ObjectsError> {
        let bad = |why: &str| ObjectsError::Url {
            url: url.unwrap_or_default().to_string(),
            why: why.to_string(),
        };
        let Some(url) = url else {
            return Self::local(default.to_path_buf());
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_matches('/');
            if bucket.is_empty() {
                return Err(bad("no bucket name; use s3://bucket[/prefix]"));
            }
            let s3 = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(&e.to_string()))?;
            let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                let key = Key::parse(prefix).map_err(|e| bad(&e.to_string()))?;
                Arc::new(PrefixStore::new(s3, key))
            };
            return Ok(Self {
                store,
                local: None,
                desc: url.to_string(),
            });
        }
        if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(bad(
                    "a file:// URL needs an absolute path, e.g. file:///srv/cove-objects",
                ));
            }
            return Self::local(PathBuf::from(dir)).map_err(|e| bad(&e.to_string()));
        }
        Err(bad("expected s3://bucket[/prefix] or file:///absolute/dir"))
    }

    fn local(dir: PathBuf) -> Result<Self, ObjectsError> {
        let desc = dir.display().to_string();
        let io = |source| ObjectsError::Io {
            store: desc.clone(),
            op: "create",
            key: String::new(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let fs = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|source| ObjectsError::Store {
                store: desc.clone(),
                op: "open",
                key: String::new(),
                source: Box::new(source),
            })?
            .with_automatic_cleanup(true);
        let fs = Arc::new(fs);
        Ok(Self {
            store: fs.clone(),
            local: Some(fs),
            desc,
        })
    }

    /// The store's URL or directory.
    pub fn describe(&self) -> &str {
        &self.desc
    }

    /// Where sandbox `id`'s archive lives.
    pub fn archive_key(id: &str) -> Key {
        Key::from_iter(["sandboxes", id, "upper.tar.zst"])
    }

    fn store_err(
        &self,
        op: &'static str,
        key: &Key,
    ) -> impl FnOnce(object_store::Error) -> ObjectsError {
        let (store, key) = (self.desc.clone(), key.to_string());
        move |source| ObjectsError::Store {
            store,
            op,
            key,
            source: Box::new(source),
        }
    }

    fn io_err(&self, op: &'static str, key: &Key) -> impl FnOnce(io::Error) -> ObjectsError {
        let (store, key) = (self.desc.clone(), key.to_string());
        move |source| ObjectsError::Io {
            store,
            op,
            key,
            source,
        }
    }

    /// Stores what `produce` writes (on a blocking thread) at `key`, replacing any object
    /// there only once everything is written; returns `produce`'s result and the bytes
    /// stored. On any failure nothing is stored and the partial upload is aborted.
    pub async fn upload<T, F>(&self, key: &Key, produce: F) -> Result<(T, u64), ObjectsError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Write) -> Result<T, String> + Send + 'static,
    {
        let local_path = match &self.local {
            Some(fs) => Some(
                fs.path_to_filesystem(key)
                    .map_err(self.store_err("locate", key))?,
            ),
            None => None,
        };
        if let Some(p) = local_path.clone() {
            // Parts of an upload a crash interrupted: gone, so ours is the only one.
            tokio::task::spawn_blocking(move || remove_staged(&p))
                .await
                .ok();
        }
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(self.store_err("start upload of", key))?;
        let staged = local_path.as_deref().and_then(open_staged).map(Arc::new);
        let mut writeback: Option<tokio::task::JoinHandle<()>> = None;
        let mut next_writeback = WRITEBACK_EVERY;
        let t0 = std::time::Instant::now();
        let mut up = WriteMultipart::new_with_chunk_size(upload, PART);
        let (tx, mut rx) = mpsc::channel::<Bytes>(IN_FLIGHT);
        let producer = tokio::task::spawn_blocking(move || {
            let mut w = Chunks {
                tx,
                buf: BytesMut::with_capacity(PART),
            };
            let out = produce(&mut w)?;
            w.send().map_err(|e| e.to_string())?;
            Ok::<T, String>(out)
        });
        let mut total = 0u64;
        let mut sent: Result<(), object_store::Error> = Ok(());
        while let Some(chunk) = rx.recv().await {
            total += chunk.len() as u64;
            if let Err(e) = up.wait_for_capacity(IN_FLIGHT).await {
                sent = Err(e);
                break;
            }
            up.put(chunk);
            if let Some(f) = staged.as_ref().filter(|_| total >= next_writeback) {
                if writeback.as_ref().is_none_or(|h| h.is_finished()) {
                    let f = f.clone();
                    writeback = Some(tokio::task::spawn_blocking(move || {
                        let _ = cove_sys::fs::start_writeback(&f);
                    }));
                }
                next_writeback = total + WRITEBACK_EVERY;
            }
        }
        // Unblocks a producer still writing after a failed part.
        drop(rx);
        let produced = producer
            .await
            .map_err(|e| ObjectsError::Stream(format!("archive writer panicked: {e}")))?;
        let out = match (produced, sent) {
            (Ok(out), Ok(())) => out,
            (produced, sent) => {
                let _ = up.abort().await;
                return Err(match sent {
                    Err(e) => self.store_err("upload", key)(e),
                    Ok(()) => ObjectsError::Stream(produced.err().unwrap_or_default()),
                });
            }
        };
        tracing::debug!(
            "{key}: {total} bytes produced and sent in {:?}",
            t0.elapsed()
        );
        up.finish()
            .await
            .map_err(self.store_err("finish upload of", key))?;
        tracing::debug!("{key}: upload finished after {:?}", t0.elapsed());
        if let Some(fs) = &self.local {
            let path = fs
                .path_to_filesystem(key)
                .map_err(self.store_err("locate", key))?;
            tokio::task::spawn_blocking(move || fsync_file_and_dir(&path))
                .await
                .map_err(|e| ObjectsError::Stream(format!("fsync task failed: {e}")))?
                .map_err(self.io_err("fsync", key))?;
            tracing::debug!("{key}: fsynced after {:?}", t0.elapsed());
        }
        Ok((out, total))
    }

    /// Feeds the object at `key` to `consume` (on a blocking thread) as it downloads.
    pub async fn download<T, F>(&self, key: &Key, consume: F) -> Result<T, ObjectsError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Read) -> Result<T, String> + Send + 'static,
    {
        let got = self
            .store
            .get(key)
            .await
            .map_err(self.store_err("download", key))?;
        let joined = match got.payload {
            GetResultPayload::File(mut f, _) => {
                tokio::task::spawn_blocking(move || consume(&mut f)).await
            }
            GetResultPayload::Stream(mut stream) => {
                let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(IN_FLIGHT);
                let consumer = tokio::task::spawn_blocking(move || {
                    let mut r = Fed {
                        rx,
                        cur: Bytes::new(),
                    };
                    consume(&mut r)
                });
                while let Some(item) = stream.next().await {
                    let item = item.map_err(|e| io::Error::other(e.to_string()));
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        break; // the consumer stopped (it reports why) or the download failed
                    }
                }
                drop(tx);
                consumer.await
            }
        };
        joined
            .map_err(|e| ObjectsError::Stream(format!("archive reader panicked: {e}")))?
            .map_err(ObjectsError::Stream)
    }

    /// Whether an object exists at `key`.
    pub async fn exists(&self, key: &Key) -> Result<bool, ObjectsError> {
        match self.store.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.store_err("look up", key)(e)),
        }
    }

    /// Deletes the object at `key`; a missing object is fine. For a local directory, the
    /// leftovers of uploads interrupted by a crash (`<key>#<n>`) go too.
    pub async fn delete(&self, key: &Key) -> Result<(), ObjectsError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.store_err("delete", key)(e)),
        }
        if let Some(fs) = &self.local {
            if let Ok(path) = fs.path_to_filesystem(key) {
                tokio::task::spawn_blocking(move || remove_staged(&path))
                    .await
                    .ok();
            }
        }
        Ok(())
    }

    /// Every key under `prefix`.
    pub async fn list(&self, prefix: &Key) -> Result<Vec<Key>, ObjectsError> {
        let mut out = Vec::new();
        let mut s = self.store.list(Some(prefix));
        while let Some(meta) = s.next().await {
            out.push(meta.map_err(self.store_err("list", prefix))?.location);
        }
        Ok(out)
    }
}

/// Makes a just-written local object durable: its data and its directory entry.
fn fsync_file_and_dir(path: &std::path::Path) -> io::Result<()> {
    File::open(path)?.sync_all()?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The file a local multipart upload of `path` is being written to (`<path>#<n>`, how
/// object_store's local store names it); `None` if there is not exactly one.
fn open_staged(path: &std::path::Path) -> Option<File> {
    let (dir, name) = (path.parent()?, path.file_name()?);
    let mut prefix = name.to_os_string();
    prefix.push("#");
    let prefix = prefix.as_encoded_bytes().to_vec();
    let mut found = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().as_encoded_bytes().starts_with(&prefix));
    let one = found.next()?;
    if found.next().is_some() {
        return None;
    }
    File::open(one.path()).ok()
}

/// Removes `<path>#<n>` files: parts of local multipart uploads a crash left behind.
fn remove_staged(path: &std::path::Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let mut prefix = name.to_os_string();
    prefix.push("#");
    let prefix = prefix.as_encoded_bytes().to_vec();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().as_encoded_bytes().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    // The sandbox's (now empty) object directory.
    let _ = std::fs::remove_dir(dir);
}

/// A [`Write`] that hands full parts to the uploading task.
struct Chunks {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
}

impl Chunks {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let part = self.buf.split().freeze();
        self.buf.reserve(PART);
        self.tx
            .blocking_send(part)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PART - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PART {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A [`Read`] over chunks sent by the downloading task.
struct Fed {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for Fed {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let t = tempfile::tempdir().unwrap();
        for (url, why) in [
            ("http://x/y", "expected s3://"),
            ("s3://", "no bucket"),
            ("s3:///prefix", "no bucket"),
            ("file://relative", "absolute path"),
        ] {
            let e = Objects::open(Some(url), t.path()).unwrap_err().to_string();
            assert!(e.contains(url) && e.contains(why), "{url}: {e}");
        }
        let o = Objects::open(None, &t.path().join("objects")).unwrap();
        assert!(t.path().join("objects").is_dir());
        assert!(o.describe().ends_with("objects"));
        let dir = t.path().join("elsewhere");
        Objects::open(Some(&format!("file://{}", dir.display())), t.path()).unwrap();
        assert!(dir.is_dir());
        assert_eq!(
            Objects::archive_key("abc").to_string(),
            "sandboxes/abc/upper.tar.zst"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upload_download_delete_in_a_local_dir() {
        let t = tempfile::tempdir().unwrap();
        let o = Objects::open(None, t.path()).unwrap();
        let key = Objects::archive_key("sb1");
        let data: Vec<u8> = (0..(PART * 2 + 12345)).map(|i| (i % 251) as u8).collect();
        let src = data.clone();
        let (n, stored) = o
            .upload(&key, move |w| {
                for c in src.chunks(100_000) {
                    w.write_all(c).map_err(|e| e.to_string())?;
                }
                Ok(src.len())
            })
            .await
            .unwrap();
        assert_eq!((n as u64, stored), (data.len() as u64, data.len() as u64));
        assert!(o.exists(&key).await.unwrap());
        assert_eq!(
            o.list(&Key::from("sandboxes")).await.unwrap(),
            vec![key.clone()]
        );
        let back = o
            .download(&key, |r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v).map_err(|e| e.to_string())?;
                Ok(v)
            })
            .await
            .unwrap();
        assert!(back == data);

        // A failing producer stores nothing and leaves the previous object alone.
        let e = o
            .upload(&key, |w| {
                w.write_all(&[1; 1000]).map_err(|e| e.to_string())?;
                Err::<(), _>("packer failed".to_string())
            })
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "packer failed");
        let size = o.store.head(&key).await.unwrap().size;
        assert_eq!(size, data.len() as u64);

        o.delete(&key).await.unwrap();
        o.delete(&key).await.unwrap();
        assert!(!o.exists(&key).await.unwrap());
        assert!(
            !t.path().join("sandboxes/sb1").exists(),
            "empty dir removed"
        );
        let e = o.download(&key, |_| Ok(())).await.unwrap_err().to_string();
        assert!(e.contains("sandboxes/sb1/upper.tar.zst"), "{e}");
    }
}

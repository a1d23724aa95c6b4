//! How a stored snapshot names its layers (the `layers` JSON array, lowest first), so that no
//! host path is written into the store and a data dir or images dir that moves keeps every
//! snapshot usable:
//!
//! - `@default`: the default image's layers, wherever the images dir is now;
//! - `layers/<id>`: a snapshot's own layer, where the runtime keeps layers (`Runtime::layer_dir`);
//! - an absolute path: a row written before these forms; [`migrate`] rewrites those at start
//!   (any that is neither a snapshot layer nor the default image is used as it is).

use std::path::{Path, PathBuf};

use sqlx::SqlitePool;

/// The default image's layers.
pub const DEFAULT: &str = "@default";

/// Snapshot `id`'s own layer.
pub fn own(id: &str) -> String {
    format!("layers/{id}")
}

/// The id of an own layer (`layers/<id>`), if `entry` is one.
pub fn own_id(entry: &str) -> Option<&str> {
    entry
        .strip_prefix("layers/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// Host directories for `entries`: an own layer where `own_dir` says (the runtime's
/// `layer_dir`), `@default` as `default`, any other entry (a legacy path) as it is.
pub fn resolve(
    entries: &[String],
    own_dir: impl Fn(&str) -> PathBuf,
    default: &[PathBuf],
) -> Vec<PathBuf> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        match own_id(e) {
            Some(id) => out.push(own_dir(id)),
            None if e == DEFAULT => out.extend(default.iter().cloned()),
            None => out.push(PathBuf::from(e)),
        }
    }
    out
}

/// The stored form of `entries` that held host paths: a snapshot layer `…/layers/<id>`
/// becomes `layers/<id>` and the default image's `…/default/rootfs` becomes `@default`,
/// matched by their tails so that rows written under a data or images dir that has moved since
/// are mapped too; `None` if nothing changes.
pub fn rewrite(entries: &[String]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(entries.len());
    for e in entries {
        let p = Path::new(e);
        let parent = p.parent().and_then(Path::file_name);
        let name = p.file_name().and_then(|n| n.to_str());
        if !p.is_absolute() {
            out.push(e.clone());
        } else if parent.is_some_and(|d| d == "layers") && name.is_some() {
            out.push(own(name.unwrap_or_default()));
        } else if p.ends_with(Path::new(cove_runtime::image::DEFAULT_IMAGE).join("rootfs")) {
            if out.last().map(String::as_str) != Some(DEFAULT) {
                out.push(DEFAULT.to_string());
            }
        } else {
            out.push(e.clone());
        }
    }
    (out != entries).then_some(out)
}

/// Rewrites every snapshot row still naming host paths (see [`rewrite`]); returns how many.
/// Runs at start, before unused layers are swept.
pub async fn migrate(pool: &SqlitePool) -> Result<usize, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, layers FROM snapshots")
        .fetch_all(pool)
        .await?;
    let mut n = 0;
    for (id, layers) in rows {
        let entries: Vec<String> = serde_json::from_str(&layers).unwrap_or_default();
        if let Some(new) = rewrite(&entries) {
            let json = serde_json::to_string(&new).unwrap_or_else(|_| "[]".into());
            sqlx::query("UPDATE snapshots SET layers = ? WHERE id = ?")
                .bind(json)
                .bind(&id)
                .execute(pool)
                .await?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn resolves_against_the_current_dirs() {
        let def = [PathBuf::from("/imgs/default/rootfs")];
        let own = |id: &str| Path::new("/new/data/layers").join(id);
        assert_eq!(
            resolve(&s(&[DEFAULT, "layers/a", "layers/b"]), own, &def),
            [
                PathBuf::from("/imgs/default/rootfs"),
                "/new/data/layers/a".into(),
                "/new/data/layers/b".into()
            ]
        );
        assert_eq!(
            resolve(&s(&["/old/abs"]), own, &def),
            [PathBuf::from("/old/abs")],
            "a legacy absolute path is kept"
        );
        assert_eq!(own_id("layers/x"), Some("x"));
        assert_eq!(own_id("layers/"), None);
        assert_eq!(own_id("layers/../x"), None);
        assert_eq!(own_id(DEFAULT), None);
    }

    #[test]
    fn host_paths_are_rewritten_once() {
        let old = s(&[
            "/var/cache/cove/images/default/rootfs",
            "/var/lib/cove/layers/a",
            "/moved/away/layers/b",
            "/elsewhere/x",
        ]);
        let new = rewrite(&old).unwrap();
        assert_eq!(new, s(&[DEFAULT, "layers/a", "layers/b", "/elsewhere/x"]));
        assert_eq!(rewrite(&new), None);
    }

    #[tokio::test]
    async fn migrate_rewrites_stored_rows() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(dir.path()).await.unwrap();
        let data = dir.path();
        let legacy = serde_json::to_string(&[
            "/imgs/default/rootfs".to_string(),
            data.join("layers/a").to_string_lossy().into_owned(),
        ])
        .unwrap();
        sqlx::query(
            "INSERT INTO snapshots (id, org_id, name, state, cpu, gpu, mem, disk, layers,
             created_at, updated_at) VALUES ('1', 'o', 'n', 'active', 1, 0, 1, 3, ?, 't', 't')",
        )
        .bind(&legacy)
        .execute(&pool)
        .await
        .unwrap();
        assert_eq!(migrate(&pool).await.unwrap(), 1);
        assert_eq!(migrate(&pool).await.unwrap(), 0, "idempotent");
        let layers: String = sqlx::query_scalar("SELECT layers FROM snapshots WHERE id = '1'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(layers, r#"["@default","layers/a"]"#);
    }
}

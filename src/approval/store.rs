//! Where approval requests survive a restart: `approvals.jsonl`, one line
//! per change (the whole request as it stands), synced before the change
//! counts. At start the last line of each request wins and the file is
//! rewritten with what is still worth keeping.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::request::Request;

/// Final requests are kept in the file this long after they were made.
const KEEP_FINAL_US: u64 = 24 * 3600 * 1_000_000;

/// The file name inside the state directory.
pub const FILE_NAME: &str = "approvals.jsonl";

/// The open store.
pub struct Store {
    path: PathBuf,
    file: File,
    /// Bytes appended since it was opened or compacted.
    appended: u64,
}

impl Store {
    /// Opens (or creates) `dir/approvals.jsonl`, readable by its owner only.
    pub fn open(dir: &Path) -> Result<Store, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("approval store {}: {e}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        let file = open_append(&path)?;
        Ok(Store {
            path,
            file,
            appended: 0,
        })
    }

    /// Every request as last written. An unfinished last line (a crash
    /// while writing it) is dropped; any other unreadable line is an error
    /// naming it.
    pub fn load(&mut self) -> Result<Vec<Request>, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("approval store {}: {e}", self.path.display()))?;
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        let mut by_id: std::collections::BTreeMap<String, Request> = Default::default();
        for (n, line) in complete.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let r: Request = serde_json::from_str(line).map_err(|e| {
                format!("approval store {} line {}: {e}", self.path.display(), n + 1)
            })?;
            by_id.insert(r.id.clone(), r);
        }
        Ok(by_id.into_values().collect())
    }

    /// Rewrites the file with the requests still worth keeping (live ones,
    /// and final ones made in the last day), atomically.
    pub fn compact<'a>(
        &mut self,
        requests: impl Iterator<Item = &'a Request>,
        now_us: u64,
    ) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("approval store {}: {e}", self.path.display());
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut out = Vec::new();
        for r in requests {
            if r.state.is_final() && r.created_us.saturating_add(KEEP_FINAL_US) < now_us {
                continue;
            }
            out.extend(line(r)?);
        }
        {
            let mut f = private(OpenOptions::new().write(true).create(true).truncate(true))
                .open(&tmp)
                .map_err(fail)?;
            f.write_all(&out).map_err(fail)?;
            f.sync_all().map_err(fail)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(fail)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
        }
        self.file = open_append(&self.path)?;
        self.appended = 0;
        Ok(())
    }

    /// Bytes appended since it was opened or last compacted.
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Appends a request's new state and syncs it.
    pub fn append(&mut self, r: &Request) -> Result<(), String> {
        let bytes = line(r)?;
        self.appended += bytes.len() as u64;
        self.file
            .write_all(&bytes)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| format!("approval store {}: {e}", self.path.display()))
    }
}

fn line(r: &Request) -> Result<Vec<u8>, String> {
    let mut b = serde_json::to_vec(r).map_err(|e| format!("request {}: {e}", r.id))?;
    b.push(b'\n');
    Ok(b)
}

fn private(o: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    o.mode(0o600)
}

fn open_append(path: &Path) -> Result<File, String> {
    private(OpenOptions::new().append(true).create(true))
        .open(path)
        .map_err(|e| format!("approval store {}: {e}", path.display()))
}

//! Client methods of the apt repository service (`spindle repo|snapshot|publish|key|db`).

use crate::client::{method, seg, Client, ClientError};
use spindle_model::apt::*;

fn acct(account: &str) -> String {
    format!("/v1/accounts/{}", seg(account))
}

/// Percent-encodes a query-string value.
fn qv(s: &str) -> String {
    seg(s)
}

impl Client {
    /// Uploads many .debs in one request; the daemon adds all or none. `files` are (name
    /// for error messages, bytes).
    pub fn upload_packages(
        &self,
        account: &str,
        files: &[(&str, &[u8])],
    ) -> Result<Vec<PackageInfo>, ClientError> {
        let mut archive = DebArchive::new();
        for (name, bytes) in files {
            archive.push(name, bytes);
        }
        self.upload_archive(account, &mut archive)
    }

    /// Uploads the .debs of `archive` in one request (all or none), leaving it empty.
    pub fn upload_archive(
        &self,
        account: &str,
        archive: &mut DebArchive,
    ) -> Result<Vec<PackageInfo>, ClientError> {
        let body = archive.take();
        self.post_raw(&format!("{}/packages/batch", acct(account)), &body)
    }

    /// POSTs a raw (non-JSON) body and decodes the JSON answer.
    fn post_raw<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &[u8],
    ) -> Result<T, ClientError> {
        let (status, out) = self.raw(method::POST, path, body, true)?;
        serde_json::from_slice(&out).map_err(|e| ClientError::Decode {
            endpoint: self.endpoint().to_owned(),
            status,
            detail: e.to_string(),
        })
    }

    /// Uploads one .deb (the raw file as the body); idempotent for identical content.
    pub fn upload_package(&self, account: &str, deb: &[u8]) -> Result<PackageInfo, ClientError> {
        self.post_raw(&format!("{}/packages", acct(account)), deb)
    }

    pub fn list_repos(&self, account: &str) -> Result<Vec<RepoInfo>, ClientError> {
        self.get(&format!("{}/repos", acct(account)))
    }

    pub fn create_repo(&self, account: &str, req: &CreateRepo) -> Result<RepoInfo, ClientError> {
        self.call(method::POST, &format!("{}/repos", acct(account)), Some(req))
    }

    pub fn describe_repo(&self, account: &str, repo: &str) -> Result<RepoInfo, ClientError> {
        self.get(&format!("{}/repos/{}", acct(account), seg(repo)))
    }

    pub fn drop_repo(&self, account: &str, repo: &str) -> Result<(), ClientError> {
        self.call(
            method::DELETE,
            &format!("{}/repos/{}", acct(account), seg(repo)),
            None::<&()>,
        )
    }

    pub fn add_to_repo(
        &self,
        account: &str,
        repo: &str,
        req: &AddPackages,
    ) -> Result<RepoChange, ClientError> {
        self.call(
            method::POST,
            &format!("{}/repos/{}/packages", acct(account), seg(repo)),
            Some(req),
        )
    }

    pub fn search_repo(
        &self,
        account: &str,
        repo: &str,
        query: &str,
    ) -> Result<Vec<PackageInfo>, ClientError> {
        self.get(&format!(
            "{}/repos/{}/packages?q={}",
            acct(account),
            seg(repo),
            qv(query)
        ))
    }

    pub fn remove_from_repo(
        &self,
        account: &str,
        repo: &str,
        req: &PackageQuery,
    ) -> Result<RepoChange, ClientError> {
        self.call(
            method::POST,
            &format!("{}/repos/{}/remove", acct(account), seg(repo)),
            Some(req),
        )
    }

    /// Copies (or with `mv`, moves) packages between repositories.
    pub fn copy_packages(
        &self,
        account: &str,
        repo: &str,
        req: &CopyPackages,
        mv: bool,
    ) -> Result<RepoChange, ClientError> {
        let verb = if mv { "move" } else { "copy" };
        self.call(
            method::POST,
            &format!("{}/repos/{}/{verb}", acct(account), seg(repo)),
            Some(req),
        )
    }

    pub fn list_snapshots(&self, account: &str) -> Result<Vec<SnapshotInfo>, ClientError> {
        self.get(&format!("{}/snapshots", acct(account)))
    }

    pub fn create_snapshot(
        &self,
        account: &str,
        req: &CreateSnapshot,
    ) -> Result<SnapshotInfo, ClientError> {
        self.call(
            method::POST,
            &format!("{}/snapshots", acct(account)),
            Some(req),
        )
    }

    pub fn describe_snapshot(
        &self,
        account: &str,
        snapshot: &str,
        query: Option<&str>,
    ) -> Result<SnapshotInfo, ClientError> {
        let q = query.map(|q| format!("?q={}", qv(q))).unwrap_or_default();
        self.get(&format!("{}/snapshots/{}{q}", acct(account), seg(snapshot)))
    }

    pub fn diff_snapshots(
        &self,
        account: &str,
        old: &str,
        new: &str,
    ) -> Result<SnapshotDiffInfo, ClientError> {
        self.get(&format!(
            "{}/snapshots/{}/diff/{}",
            acct(account),
            seg(old),
            seg(new)
        ))
    }

    pub fn drop_snapshot(&self, account: &str, snapshot: &str) -> Result<(), ClientError> {
        self.call(
            method::DELETE,
            &format!("{}/snapshots/{}", acct(account), seg(snapshot)),
            None::<&()>,
        )
    }

    pub fn list_publications(&self, account: &str) -> Result<Vec<PublicationInfo>, ClientError> {
        self.get(&format!("{}/publications", acct(account)))
    }

    pub fn create_publication(
        &self,
        account: &str,
        req: &CreatePublication,
    ) -> Result<PublicationInfo, ClientError> {
        self.call(
            method::POST,
            &format!("{}/publications", acct(account)),
            Some(req),
        )
    }

    pub fn update_publication(
        &self,
        account: &str,
        req: &PublicationRef,
    ) -> Result<PublicationInfo, ClientError> {
        self.call(
            method::POST,
            &format!("{}/publications/update", acct(account)),
            Some(req),
        )
    }

    pub fn switch_publication(
        &self,
        account: &str,
        req: &SwitchPublication,
    ) -> Result<PublicationInfo, ClientError> {
        self.call(
            method::POST,
            &format!("{}/publications/switch", acct(account)),
            Some(req),
        )
    }

    pub fn drop_publication(&self, account: &str, req: &PublicationRef) -> Result<(), ClientError> {
        self.call(
            method::POST,
            &format!("{}/publications/drop", acct(account)),
            Some(req),
        )
    }

    pub fn list_signing_keys(&self, account: &str) -> Result<Vec<SigningKeyInfo>, ClientError> {
        self.get(&format!("{}/signing-keys", acct(account)))
    }

    pub fn create_signing_key(
        &self,
        account: &str,
        req: &CreateSigningKey,
    ) -> Result<SigningKeyInfo, ClientError> {
        self.call(
            method::POST,
            &format!("{}/signing-keys", acct(account)),
            Some(req),
        )
    }

    pub fn export_signing_key(
        &self,
        account: &str,
        name: &str,
    ) -> Result<SigningKeyInfo, ClientError> {
        self.get(&format!("{}/signing-keys/{}", acct(account), seg(name)))
    }

    pub fn delete_signing_key(&self, account: &str, name: &str) -> Result<(), ClientError> {
        self.call(
            method::DELETE,
            &format!("{}/signing-keys/{}", acct(account), seg(name)),
            None::<&()>,
        )
    }

    /// Removes unreferenced package records and pool files; only reports unless `apply`.
    pub fn cleanup_db(&self, apply: bool) -> Result<CleanupReport, ClientError> {
        self.call(
            method::POST,
            &format!("/v1/db/cleanup?apply={apply}"),
            None::<&()>,
        )
    }

    pub fn list_mirrors(&self, account: &str) -> Result<Vec<MirrorInfo>, ClientError> {
        self.get(&format!("{}/mirrors", acct(account)))
    }

    pub fn create_mirror(
        &self,
        account: &str,
        req: &CreateMirror,
    ) -> Result<MirrorInfo, ClientError> {
        self.call(
            method::POST,
            &format!("{}/mirrors", acct(account)),
            Some(req),
        )
    }

    pub fn describe_mirror(&self, account: &str, name: &str) -> Result<MirrorInfo, ClientError> {
        self.get(&format!("{}/mirrors/{}", acct(account), seg(name)))
    }

    pub fn update_mirror(&self, account: &str, name: &str) -> Result<MirrorInfo, ClientError> {
        self.call(
            method::POST,
            &format!("{}/mirrors/{}/update", acct(account), seg(name)),
            None::<&()>,
        )
    }

    pub fn drop_mirror(&self, account: &str, name: &str) -> Result<(), ClientError> {
        self.call(
            method::DELETE,
            &format!("{}/mirrors/{}", acct(account), seg(name)),
            None::<&()>,
        )
    }
}

/// A tar archive of .debs being built for one batch upload (the format the daemon's
/// `POST .../packages/batch` reads): POSIX ustar, regular files only.
#[derive(Debug, Default)]
pub struct DebArchive {
    buf: Vec<u8>,
    count: usize,
}

impl DebArchive {
    pub fn new() -> DebArchive {
        DebArchive::default()
    }

    /// Appends one .deb. The name only labels the daemon's errors; names longer than 100
    /// bytes are shortened to `package-N.deb`.
    pub fn push(&mut self, name: &str, bytes: &[u8]) {
        let short;
        let name = if name.len() <= 100 {
            name
        } else {
            short = format!("package-{}.deb", self.count);
            &short
        };
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", bytes.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.buf.extend_from_slice(&h);
        self.buf.extend_from_slice(bytes);
        self.buf.resize(self.buf.len().div_ceil(512) * 512, 0);
        self.count += 1;
    }

    /// How many .debs it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Its size so far, in bytes.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// The finished archive (with the two zero blocks that end a tar), leaving this empty.
    pub fn take(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        out.resize(out.len() + 1024, 0);
        self.count = 0;
        out
    }
}

//! Where an engine keeps its durable state: one document per engine, replaced whole and
//! atomically on every save.
//!
//! The runtime and the resource providers keep their records in memory and write the whole
//! set after each change. They don't know where it goes: the daemon plugs in a document in its
//! SQLite store (one row, replaced in one transaction; see `spindle_store`'s
//! `engine_state`), while tests and tools that run an engine without a daemon use a
//! [`FileDoc`] (a JSON file written to a temporary file and renamed) or a [`MemoryDoc`].
//! Either way a save that fails leaves the last saved document as it was.

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why a state document could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("state document `{name}`: {message}")]
pub struct DocError {
    /// The document's name (a file path for a [`FileDoc`]).
    pub name: String,
    pub message: String,
}

impl DocError {
    pub fn new(name: impl Into<String>, message: impl std::fmt::Display) -> Self {
        DocError {
            name: name.into(),
            message: message.to_string(),
        }
    }
}

/// One engine's durable state document.
pub trait StateDoc: Send + Sync + Debug {
    /// A name for messages.
    fn name(&self) -> String;
    /// The last saved body, or `None` if nothing was ever saved.
    fn load(&self) -> Result<Option<Vec<u8>>, DocError>;
    /// Replaces the body: afterwards `load` returns `body`, or, if this fails, what it
    /// returned before.
    fn save(&self, body: &[u8]) -> Result<(), DocError>;
}

/// A JSON file, written to `<file>.tmp` and renamed over the old one.
#[derive(Debug, Clone)]
pub struct FileDoc {
    path: PathBuf,
}

impl FileDoc {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileDoc { path: path.into() }
    }

    pub fn arc(path: impl Into<PathBuf>) -> Arc<dyn StateDoc> {
        Arc::new(Self::new(path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl StateDoc for FileDoc {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn load(&self) -> Result<Option<Vec<u8>>, DocError> {
        match std::fs::read(&self.path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DocError::new(self.name(), e)),
        }
    }

    fn save(&self, body: &[u8]) -> Result<(), DocError> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, body).map_err(|e| DocError::new(tmp.display().to_string(), e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| DocError::new(self.name(), e))
    }
}

/// A document in memory only (tests; engines whose state need not survive the process).
#[derive(Debug, Default)]
pub struct MemoryDoc {
    body: Mutex<Option<Vec<u8>>>,
}

impl MemoryDoc {
    pub fn arc() -> Arc<dyn StateDoc> {
        Arc::new(MemoryDoc::default())
    }
}

impl StateDoc for MemoryDoc {
    fn name(&self) -> String {
        "memory".into()
    }

    fn load(&self) -> Result<Option<Vec<u8>>, DocError> {
        Ok(self.body.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn save(&self, body: &[u8]) -> Result<(), DocError> {
        *self.body.lock().unwrap_or_else(|p| p.into_inner()) = Some(body.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_doc_round_trips_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let doc = FileDoc::new(dir.path().join("state.json"));
        assert_eq!(doc.load().unwrap(), None);
        doc.save(b"{\"a\":1}").unwrap();
        assert_eq!(doc.load().unwrap().as_deref(), Some(&b"{\"a\":1}"[..]));
        assert!(!dir.path().join("state.json.tmp").exists());
        let gone = FileDoc::new(dir.path().join("no-such-dir/state.json"));
        let err = gone.save(b"{}").unwrap_err();
        assert!(err.to_string().contains("no-such-dir"), "{err}");
        assert_eq!(doc.load().unwrap().as_deref(), Some(&b"{\"a\":1}"[..]));
    }

    #[test]
    fn memory_doc_round_trips() {
        let doc = MemoryDoc::arc();
        assert_eq!(doc.load().unwrap(), None);
        doc.save(b"x").unwrap();
        assert_eq!(doc.load().unwrap().as_deref(), Some(&b"x"[..]));
    }
}

//! The CloudFormation registry property schemas of every resource type, bundled compressed
//! and decoded one type at a time, on first use.
//!
//! `data/resource_props.bin` is written by `gen/gen_resource_schemas.py` from the registry
//! schemas cfn-lint bundles (MIT-0): a text index (`TYPE OFFSET LENGTH` per line) followed by
//! one raw-deflate blob per type. The bytes are part of the binary's read-only data, so an
//! idle daemon pays for them only in file size: the index is parsed on the first lookup and a
//! type's schema is inflated and parsed the first time a template uses that type, then kept.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value as J;

const BUNDLED: &[u8] = include_bytes!("../data/resource_props.bin");
const MAGIC: &str = "SPINDLE-PROPS 1";

/// The property schema of one resource type, reduced by the generator to the keywords the
/// validator checks (`type`, `properties`, `required`, `additionalProperties: false`,
/// `patternProperties`, `enum`, `pattern`, lengths, ranges, `items`, `$ref`/`definitions`).
#[derive(Debug)]
pub struct TypeSchema {
    pub root: J,
    /// Compiled `pattern`s, by source; `None` for a pattern this regex engine can't compile
    /// (it is then not checked: a check we can't do must not become a false error).
    patterns: Mutex<HashMap<String, Option<Arc<fancy_regex::Regex>>>>,
}

impl TypeSchema {
    fn new(root: J) -> Self {
        TypeSchema {
            root,
            patterns: Mutex::new(HashMap::new()),
        }
    }

    /// A `#/definitions/NAME` reference, resolved.
    pub fn definition(&self, reference: &str) -> Option<&J> {
        let name = reference.strip_prefix("#/definitions/")?;
        self.root.get("definitions")?.get(name)
    }

    /// The compiled form of a schema `pattern`, compiled once per type.
    pub fn pattern(&self, source: &str) -> Option<Arc<fancy_regex::Regex>> {
        let mut cache = self.patterns.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(source.to_string())
            .or_insert_with(|| fancy_regex::Regex::new(source).ok().map(Arc::new))
            .clone()
    }
}

/// Why the bundled table could not be read (a build with a damaged data file).
#[derive(Debug, thiserror::Error)]
pub enum SchemaDataError {
    #[error("resource property table: bad header")]
    Header,
    #[error("resource property table: bad index line {line}")]
    Index { line: usize },
    #[error("resource property table: {type_name}: {source}")]
    Inflate {
        type_name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("resource property table: {type_name}: {source}")]
    Json {
        type_name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Every type's property schema, decoded lazily.
#[derive(Debug)]
pub struct PropertySchemas {
    index: HashMap<&'static str, (usize, usize)>,
    blobs: &'static [u8],
    decoded: Mutex<HashMap<&'static str, Arc<TypeSchema>>>,
}

static TABLE: OnceLock<PropertySchemas> = OnceLock::new();

impl PropertySchemas {
    /// The table built into this binary. Its index is parsed on the first call.
    pub fn bundled() -> &'static PropertySchemas {
        TABLE.get_or_init(|| {
            PropertySchemas::parse(BUNDLED).unwrap_or_else(|e| {
                // The file is generated and checked by this crate's tests; a damaged copy
                // disables property checks instead of failing every template.
                debug_assert!(false, "{e}");
                PropertySchemas {
                    index: HashMap::new(),
                    blobs: &[],
                    decoded: Mutex::new(HashMap::new()),
                }
            })
        })
    }

    /// Reads the index of a table in the generator's format.
    pub fn parse(data: &'static [u8]) -> Result<PropertySchemas, SchemaDataError> {
        let mut rest = data;
        let next_line = |rest: &mut &'static [u8]| -> Option<&'static str> {
            let end = rest.iter().position(|&b| b == b'\n')?;
            let line = std::str::from_utf8(&rest[..end]).ok()?;
            *rest = &rest[end + 1..];
            Some(line)
        };
        if next_line(&mut rest) != Some(MAGIC) {
            return Err(SchemaDataError::Header);
        }
        let count: usize = next_line(&mut rest)
            .and_then(|l| l.parse().ok())
            .ok_or(SchemaDataError::Header)?;
        let mut index = HashMap::with_capacity(count);
        for line_no in 1..=count {
            let bad = || SchemaDataError::Index { line: line_no };
            let line = next_line(&mut rest).ok_or_else(bad)?;
            let mut it = line.split(' ');
            let (Some(name), Some(off), Some(len), None) =
                (it.next(), it.next(), it.next(), it.next())
            else {
                return Err(bad());
            };
            let off: usize = off.parse().map_err(|_| bad())?;
            let len: usize = len.parse().map_err(|_| bad())?;
            index.insert(name, (off, len));
        }
        if next_line(&mut rest) != Some("") {
            return Err(SchemaDataError::Header);
        }
        if index.values().any(|&(o, l)| o + l > rest.len()) {
            return Err(SchemaDataError::Index { line: 0 });
        }
        Ok(PropertySchemas {
            index,
            blobs: rest,
            decoded: Mutex::new(HashMap::new()),
        })
    }

    /// Whether the registry knows this type.
    pub fn contains(&self, type_name: &str) -> bool {
        self.index.contains_key(type_name)
    }

    /// Every type the registry knows, unsorted.
    pub fn type_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.index.keys().copied()
    }

    /// How many types have been decoded so far (for tests of the lazy loading).
    pub fn decoded_count(&self) -> usize {
        self.decoded.lock().map(|d| d.len()).unwrap_or_default()
    }

    /// The schema of `type_name`, decoded on first use; `None` for a type the registry
    /// doesn't know (a custom resource, a third-party type, a typo).
    pub fn get(&self, type_name: &str) -> Option<Arc<TypeSchema>> {
        self.try_get(type_name).ok().flatten()
    }

    /// Like [`PropertySchemas::get`], with the reason a known type could not be decoded.
    pub fn try_get(&self, type_name: &str) -> Result<Option<Arc<TypeSchema>>, SchemaDataError> {
        let Some((&key, &(off, len))) = self.index.get_key_value(type_name) else {
            return Ok(None);
        };
        if let Some(s) = self
            .decoded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            return Ok(Some(s.clone()));
        }
        let mut text = Vec::with_capacity(len * 8);
        flate2::read::DeflateDecoder::new(&self.blobs[off..off + len])
            .read_to_end(&mut text)
            .map_err(|source| SchemaDataError::Inflate {
                type_name: key.to_string(),
                source,
            })?;
        let root: J = serde_json::from_slice(&text).map_err(|source| SchemaDataError::Json {
            type_name: key.to_string(),
            source,
        })?;
        let schema = Arc::new(TypeSchema::new(root));
        let mut decoded = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Some(decoded.entry(key).or_insert(schema).clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_type_decodes() {
        let t = PropertySchemas::parse(BUNDLED).expect("bundled table parses");
        assert!(t.index.len() > 1000, "{} types", t.index.len());
        let names: Vec<&str> = t.type_names().collect();
        for name in names {
            let s = t.try_get(name).expect("decodes").expect("known");
            assert!(s.root.is_object(), "{name}");
        }
        assert_eq!(t.decoded_count(), t.index.len());
    }

    #[test]
    fn lookups_are_lazy_and_cached() {
        let t = PropertySchemas::parse(BUNDLED).unwrap();
        assert_eq!(t.decoded_count(), 0);
        let a = t.get("AWS::EC2::VPC").unwrap();
        let b = t.get("AWS::EC2::VPC").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(t.decoded_count(), 1);
        assert!(a.root["properties"].get("CidrBlock").is_some());
        assert!(t.get("Custom::Thing").is_none());
    }

    #[test]
    fn damaged_tables_are_refused() {
        assert!(matches!(
            PropertySchemas::parse(b"nope\n"),
            Err(SchemaDataError::Header)
        ));
        assert!(matches!(
            PropertySchemas::parse(b"SPINDLE-PROPS 1\n1\nAWS::X::Y 0 99\n\nabc"),
            Err(SchemaDataError::Index { .. })
        ));
        let t = PropertySchemas::parse(b"SPINDLE-PROPS 1\n1\nAWS::X::Y 0 3\n\nabc").unwrap();
        assert!(matches!(
            t.try_get("AWS::X::Y"),
            Err(SchemaDataError::Inflate { .. }) | Err(SchemaDataError::Json { .. })
        ));
    }
}

//! Matrix expansion as GitHub documents it ("Using a matrix for your jobs"):
//! 1. the cartesian product of every key other than `include` and `exclude`, in key order;
//! 2. `exclude`: drop every combination that matches all of an entry's keys (an entry may
//!    name only some keys);
//! 3. `include`: for each entry, add its key:value pairs to every combination in which none
//!    of them would overwrite an original matrix value (values added by earlier entries may
//!    be overwritten); an entry that fits no combination becomes a combination of its own.

use serde_json::{Map, Value};

/// The most jobs one matrix may produce (GitHub's limit).
pub const MAX_JOBS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    #[error("matrix key `{0}` must be a non-empty sequence")]
    NotAList(String),
    #[error("`{0}` must be a sequence of mappings")]
    BadEntries(&'static str),
    #[error("the matrix produces {0} jobs, over GitHub's limit of {MAX_JOBS}")]
    TooMany(usize),
    #[error("the matrix produces no jobs")]
    Empty,
}

/// Expands a `strategy.matrix` mapping, its keys in file order (the order of the product),
/// into its combinations, in GitHub's order.
pub fn expand(matrix: &[(String, Value)]) -> Result<Vec<Map<String, Value>>, MatrixError> {
    let mut combos: Vec<Map<String, Value>> = vec![Map::new()];
    let mut has_axes = false;
    for (k, v) in matrix {
        if k == "include" || k == "exclude" {
            continue;
        }
        let Value::Array(values) = v else {
            return Err(MatrixError::NotAList(k.clone()));
        };
        if values.is_empty() {
            return Err(MatrixError::NotAList(k.clone()));
        }
        has_axes = true;
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for c in &combos {
            for val in values {
                let mut c = c.clone();
                c.insert(k.clone(), val.clone());
                next.push(c);
            }
            if next.len() > MAX_JOBS * 64 {
                return Err(MatrixError::TooMany(next.len()));
            }
        }
        combos = next;
    }
    if !has_axes {
        combos.clear();
    }
    for ex in entries(matrix, "exclude")? {
        combos.retain(|c| !ex.iter().all(|(k, v)| c.get(k) == Some(v)));
    }
    // The combinations as the matrix itself made them: include entries may not overwrite
    // these values, but may overwrite each other's.
    let originals: Vec<Map<String, Value>> = combos.clone();
    let mut extra = Vec::new();
    for inc in entries(matrix, "include")? {
        let mut fitted = false;
        for i in 0..originals.len() {
            let fits = inc
                .iter()
                .all(|(k, v)| originals[i].get(k).is_none_or(|o| o == v));
            if fits {
                fitted = true;
                for (k, v) in inc {
                    combos[i].insert(k.clone(), v.clone());
                }
            }
        }
        if !fitted {
            extra.push(inc.clone());
        }
    }
    combos.extend(extra);
    if combos.len() > MAX_JOBS {
        return Err(MatrixError::TooMany(combos.len()));
    }
    if combos.is_empty() {
        return Err(MatrixError::Empty);
    }
    Ok(combos)
}

fn entries<'a>(
    matrix: &'a [(String, Value)],
    key: &'static str,
) -> Result<Vec<&'a Map<String, Value>>, MatrixError> {
    match matrix.iter().find(|(k, _)| k == key).map(|(_, v)| v) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_object().ok_or(MatrixError::BadEntries(key)))
            .collect(),
        Some(_) => Err(MatrixError::BadEntries(key)),
    }
}

//! Push filters: which pushes start a workflow. GitHub's filter patterns ("Filter pattern
//! cheat sheet"): `*` is any run of characters but `/`, `**` any run including `/`, `?` makes
//! the character before it optional, `+` repeats it one or more times, `[a-z0-9]` is a class,
//! `\` escapes; in `branches`, `tags` and `paths` a leading `!` excludes what earlier patterns
//! included, and the last matching pattern decides.

use crate::model::PushFilter;

/// Why a pattern can't be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter pattern `{pattern}`: {message}")]
pub struct PatternError {
    pub pattern: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Char(char),
    Class(Vec<(char, char)>),
    /// `*`: any run without `/`.
    Star,
    /// `**`: any run.
    DoubleStar,
    /// `**/`: nothing, or any run that ends with `/` (so `docs/**/*.md` takes `docs/a.md`).
    AnyDirs,
}

#[derive(Debug, Clone, PartialEq)]
enum Rep {
    One,
    /// `?`
    Optional,
    /// `+`
    OneOrMore,
}

fn compile(pattern: &str) -> Result<Vec<(Atom, Rep)>, PatternError> {
    let fail = |m: &str| PatternError {
        pattern: pattern.to_string(),
        message: m.to_string(),
    };
    let chars: Vec<char> = pattern.chars().collect();
    let mut out: Vec<(Atom, Rep)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let atom = match c {
            '*' if chars.get(i + 1) == Some(&'*') && chars.get(i + 2) == Some(&'/') => {
                i += 2;
                Atom::AnyDirs
            }
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                Atom::DoubleStar
            }
            '*' => Atom::Star,
            '\\' => {
                i += 1;
                Atom::Char(*chars.get(i).ok_or_else(|| fail("ends with `\\`"))?)
            }
            '[' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|c| *c == ']')
                    .ok_or_else(|| fail("`[` is not closed by `]`"))?
                    + i
                    + 1;
                let body = &chars[i + 1..close];
                if body.is_empty() {
                    return Err(fail("`[]` is empty"));
                }
                let mut ranges = Vec::new();
                let mut j = 0;
                while j < body.len() {
                    if body.get(j + 1) == Some(&'-') && j + 2 < body.len() {
                        let (a, b) = (body[j], body[j + 2]);
                        if !(a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric()) || a > b {
                            return Err(fail(&format!(
                                "`{a}-{b}` is not a range of letters or digits"
                            )));
                        }
                        ranges.push((a, b));
                        j += 3;
                    } else {
                        ranges.push((body[j], body[j]));
                        j += 1;
                    }
                }
                i = close;
                Atom::Class(ranges)
            }
            '?' | '+' => {
                let Some(last) = out.last_mut() else {
                    return Err(fail(&format!("`{c}` has nothing before it to apply to")));
                };
                if last.1 != Rep::One
                    || matches!(last.0, Atom::Star | Atom::DoubleStar | Atom::AnyDirs)
                {
                    return Err(fail(&format!("`{c}` cannot follow `*`, `?` or `+`")));
                }
                last.1 = if c == '?' {
                    Rep::Optional
                } else {
                    Rep::OneOrMore
                };
                i += 1;
                continue;
            }
            c => Atom::Char(c),
        };
        out.push((atom, Rep::One));
        i += 1;
    }
    Ok(out)
}

fn atom_matches(a: &Atom, c: char) -> bool {
    match a {
        Atom::Char(x) => *x == c,
        Atom::Class(r) => r.iter().any(|(lo, hi)| *lo <= c && c <= *hi),
        Atom::Star => c != '/',
        Atom::DoubleStar | Atom::AnyDirs => true,
    }
}

/// Backtracking match, memoised on (atom, position) so it stays polynomial.
fn matches_from(
    p: &[(Atom, Rep)],
    t: &[char],
    pi: usize,
    ti: usize,
    memo: &mut [Option<bool>],
) -> bool {
    let w = t.len() + 1;
    if let Some(r) = memo[pi * w + ti] {
        return r;
    }
    let r = if pi == p.len() {
        ti == t.len()
    } else {
        let (atom, rep) = &p[pi];
        match (atom, rep) {
            (Atom::AnyDirs, _) => (ti..=t.len())
                .any(|k| (k == ti || t[k - 1] == '/') && matches_from(p, t, pi + 1, k, memo)),
            (Atom::Star | Atom::DoubleStar, _) => {
                let mut k = ti;
                loop {
                    if matches_from(p, t, pi + 1, k, memo) {
                        break true;
                    }
                    if k < t.len() && atom_matches(atom, t[k]) {
                        k += 1;
                    } else {
                        break false;
                    }
                }
            }
            (_, Rep::One) => {
                ti < t.len()
                    && atom_matches(atom, t[ti])
                    && matches_from(p, t, pi + 1, ti + 1, memo)
            }
            (_, Rep::Optional) => {
                matches_from(p, t, pi + 1, ti, memo)
                    || (ti < t.len()
                        && atom_matches(atom, t[ti])
                        && matches_from(p, t, pi + 1, ti + 1, memo))
            }
            (_, Rep::OneOrMore) => {
                let mut k = ti;
                let mut found = false;
                while k < t.len() && atom_matches(atom, t[k]) {
                    k += 1;
                    if matches_from(p, t, pi + 1, k, memo) {
                        found = true;
                        break;
                    }
                }
                found
            }
        }
    };
    memo[pi * w + ti] = Some(r);
    r
}

/// Checks that a pattern (without its leading `!`) can be used.
pub fn check(pattern: &str) -> Result<(), PatternError> {
    compile(pattern.strip_prefix('!').unwrap_or(pattern)).map(|_| ())
}

/// Whether `text` matches `pattern` (no `!` handling). A bad pattern matches nothing.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let Ok(p) = compile(pattern) else {
        return false;
    };
    let t: Vec<char> = text.chars().collect();
    let mut memo = vec![None; (p.len() + 1) * (t.len() + 1)];
    matches_from(&p, &t, 0, 0, &mut memo)
}

/// The ordered include/exclude rule: the last pattern that matches decides.
fn included(patterns: &[String], text: &str) -> bool {
    let mut inc = false;
    for p in patterns {
        match p.strip_prefix('!') {
            Some(neg) if glob_match(neg, text) => inc = false,
            None if glob_match(p, text) => inc = true,
            _ => {}
        }
    }
    inc
}

impl PushFilter {
    /// Whether a push of `git_ref` (`refs/heads/…` or `refs/tags/…`) changing `paths` starts
    /// the workflow. With only branch filters, tag pushes don't; with only tag filters, branch
    /// pushes don't. Path filters apply to both, and the ref and the paths must both pass.
    pub fn matches(&self, git_ref: &str, paths: &[&str]) -> bool {
        let has_branch = !self.branches.is_empty() || !self.branches_ignore.is_empty();
        let has_tag = !self.tags.is_empty() || !self.tags_ignore.is_empty();
        let ref_ok = if let Some(b) = git_ref.strip_prefix("refs/heads/") {
            if has_branch {
                side(&self.branches, &self.branches_ignore, b)
            } else {
                !has_tag
            }
        } else if let Some(t) = git_ref.strip_prefix("refs/tags/") {
            if has_tag {
                side(&self.tags, &self.tags_ignore, t)
            } else {
                !has_branch
            }
        } else {
            false
        };
        let paths_ok = if !self.paths.is_empty() {
            paths.iter().any(|p| included(&self.paths, p))
        } else if !self.paths_ignore.is_empty() {
            !paths
                .iter()
                .all(|p| self.paths_ignore.iter().any(|i| glob_match(i, p)))
        } else {
            true
        };
        ref_ok && paths_ok
    }
}

fn side(include: &[String], ignore: &[String], name: &str) -> bool {
    if !include.is_empty() {
        included(include, name)
    } else {
        !ignore.iter().any(|i| glob_match(i, name))
    }
}

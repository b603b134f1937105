//! `AWS::LanguageExtensions`: `Fn::ForEach` expansion on the syntax tree.
//!
//! The transform runs before anything else looks at the template, so expansion rewrites the
//! tree; copied nodes keep their original positions, so diagnostics inside a loop body point
//! at the body in the source.

use std::collections::HashSet;

use crate::ast::{Func, Key, Node, NodeKind};
use crate::diag::{join, Category, Sink};

pub(crate) const PREFIX: &str = "Fn::ForEach::";

/// Evaluates a loop collection to its items, or reports why not.
pub(crate) type CollectionEval<'a> = dyn Fn(&Node, &str) -> Option<Vec<String>> + 'a;

/// True when any mapping in the tree has an `Fn::ForEach::` key.
pub(crate) fn has_foreach(n: &Node) -> bool {
    let mut found = false;
    n.walk(&mut |x| {
        if let Some(m) = x.as_map() {
            found |= m.iter().any(|(k, _)| k.name.starts_with(PREFIX));
        }
    });
    found
}

/// Expands every `Fn::ForEach::Name: [Identifier, Collection, {Key: Value}]` entry.
pub(crate) fn expand(node: &Node, path: &str, coll: &CollectionEval<'_>, sink: &mut Sink) -> Node {
    match &node.kind {
        NodeKind::Map(entries) => {
            let mut out: Vec<(Key, Node)> = Vec::with_capacity(entries.len());
            let mut seen: HashSet<String> = HashSet::new();
            for (k, v) in entries {
                if k.name.starts_with(PREFIX) {
                    let lpath = join(path, &k.name);
                    for (nk, nv) in expand_loop(v, &lpath, coll, sink) {
                        push_unique(&mut out, &mut seen, nk, nv, path, sink);
                    }
                } else {
                    let nv = expand(v, &join(path, &k.name), coll, sink);
                    push_unique(&mut out, &mut seen, k.clone(), nv, path, sink);
                }
            }
            Node::new(node.pos, NodeKind::Map(out))
        }
        NodeKind::List(items) => Node::new(
            node.pos,
            NodeKind::List(items.iter().map(|n| expand(n, path, coll, sink)).collect()),
        ),
        NodeKind::Intrinsic(i) => {
            let mut i2 = (**i).clone();
            i2.arg = expand(&i.arg, path, coll, sink);
            Node::new(node.pos, NodeKind::Intrinsic(Box::new(i2)))
        }
        _ => node.clone(),
    }
}

fn push_unique(
    out: &mut Vec<(Key, Node)>,
    seen: &mut HashSet<String>,
    k: Key,
    v: Node,
    path: &str,
    sink: &mut Sink,
) {
    if seen.insert(k.name.clone()) {
        out.push((k, v));
    } else {
        sink.push(
            Category::Structure,
            k.pos,
            path,
            format!("Fn::ForEach produces the key `{}` more than once", k.name),
        );
    }
}

/// One loop: returns the generated entries, with nested loops already expanded (each
/// iteration expands its own copy, so nested loops see the outer identifier's value).
fn expand_loop(
    v: &Node,
    path: &str,
    coll: &CollectionEval<'_>,
    sink: &mut Sink,
) -> Vec<(Key, Node)> {
    let Some([ident, collection, body]) = v.as_list().and_then(|l| <&[Node; 3]>::try_from(l).ok())
    else {
        sink.push(
            Category::Intrinsic,
            v.pos,
            path,
            "Fn::ForEach takes [Identifier, Collection, {OutputKey: OutputValue}]",
        );
        return Vec::new();
    };
    let Some(ident) = ident.as_str() else {
        sink.push(
            Category::Intrinsic,
            ident.pos,
            path,
            "the Fn::ForEach identifier must be a string",
        );
        return Vec::new();
    };
    let Some(body_entries) = body.as_map() else {
        sink.push(
            Category::Intrinsic,
            body.pos,
            path,
            "the Fn::ForEach body must be a mapping",
        );
        return Vec::new();
    };
    let Some(items) = coll(collection, path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in &items {
        let copy = subst(body, ident, item);
        if let NodeKind::Map(entries) = expand(&copy, path, coll, sink).kind {
            out.extend(entries);
        }
    }
    let _ = body_entries;
    out
}

/// Replaces `${ident}` and `&{ident}` (the latter with non-alphanumerics removed).
fn subst_text(s: &str, ident: &str, item: &str) -> String {
    if !s.contains('{') {
        return s.to_string();
    }
    let alnum: String = item.chars().filter(char::is_ascii_alphanumeric).collect();
    s.replace(&format!("${{{ident}}}"), item)
        .replace(&format!("&{{{ident}}}"), &alnum)
}

/// Copies a loop body with the identifier replaced in keys, `Ref`s and `Fn::Sub` strings.
fn subst(n: &Node, ident: &str, item: &str) -> Node {
    match &n.kind {
        NodeKind::Map(entries) => Node::new(
            n.pos,
            NodeKind::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            Key {
                                name: subst_text(&k.name, ident, item),
                                pos: k.pos,
                            },
                            subst(v, ident, item),
                        )
                    })
                    .collect(),
            ),
        ),
        NodeKind::List(l) => Node::new(
            n.pos,
            NodeKind::List(l.iter().map(|x| subst(x, ident, item)).collect()),
        ),
        NodeKind::Intrinsic(i) => {
            if i.func == Func::Ref && i.arg.as_str() == Some(ident) {
                return Node::string(n.pos, item);
            }
            let mut i2 = (**i).clone();
            i2.arg = if i.func == Func::Sub {
                subst_sub(&i.arg, ident, item)
            } else {
                subst(&i.arg, ident, item)
            };
            simplify_sub(Node::new(n.pos, NodeKind::Intrinsic(Box::new(i2))))
        }
        _ => n.clone(),
    }
}

/// After substitution an `Fn::Sub` without variables is just its text; logical ids built
/// with `!Sub` (as in `!GetAtt [!Sub 'Bucket${Id}', Arn]`) then become plain names.
fn simplify_sub(n: Node) -> Node {
    if let NodeKind::Intrinsic(i) = &n.kind {
        if i.func == Func::Sub {
            if let NodeKind::String(s) = &i.arg.kind {
                if !s.contains("${") {
                    return Node::string(n.pos, s.clone());
                }
            }
        }
    }
    n
}

fn subst_sub(arg: &Node, ident: &str, item: &str) -> Node {
    match &arg.kind {
        NodeKind::String(s) => Node::string(arg.pos, subst_text(s, ident, item)),
        NodeKind::List(l) => Node::new(
            arg.pos,
            NodeKind::List(
                l.iter()
                    .enumerate()
                    .map(|(i, x)| match (&x.kind, i) {
                        (NodeKind::String(s), 0) => Node::string(x.pos, subst_text(s, ident, item)),
                        _ => subst(x, ident, item),
                    })
                    .collect(),
            ),
        ),
        _ => subst(arg, ident, item),
    }
}
